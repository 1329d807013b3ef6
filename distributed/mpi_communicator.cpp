// MpiCommunicator: every collective is posted non-blocking and waited for against a deadline.
// A rank whose wait times out asks every other rank, on a private duplicate of the world
// communicator, which collective it is in; ranks that are waiting themselves answer from their
// poll loop. Silent ranks did not arrive (stopped, killed, computing); ranks that answer with
// another collective issued a different sequence. The CommError then names them (exit 5).
#include "distributed/mpi_communicator.h"

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <type_traits>

#include "core/error.h"
#include "core/rng.h"

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

enum OpKind : int64_t { kSumFloat, kSumDouble, kMaxInt64, kBroadcast, kGatherU64, kGatherDouble, kGatherHost, kBarrier };
const char* op_name(int64_t kind) {
  static const char* const names[] = {"allreduce_sum(float)", "allreduce_sum(double)", "allreduce_max(int64)",
                                      "broadcast(bytes)",     "allgather(uint64)",     "allgather(double)",
                                      "allgather(host name)", "barrier"};
  return kind >= 0 && kind <= kBarrier ? names[kind] : "unknown collective";
}

constexpr int kQueryTag = 7001, kReplyTag = 7002;

// One posted MPI call: what it is, for the hash and for messages.
struct Op {
  int64_t seq = 0, kind = 0, count = 0, step = -1;
};

std::string mpi_error(int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return std::string(msg, static_cast<size_t>(len));
}

std::string describe(const Op& op) {
  std::ostringstream os;
  os << op_name(op.kind) << " of " << op.count << " elements (collective #" << op.seq;
  if (op.step >= 0) os << ", step " << op.step;
  os << ")";
  return os.str();
}

// What the main thread is waiting for, for the crash handler. Ranks that issue collectives of
// different sizes make OpenMPI's non-blocking engine (libnbc) fail a truncated receive and then
// crash with SIGSEGV; the handler turns that into tessera's one error line and exit 5 instead of
// an anonymous segfault. Plain integers: the handler may only read and write().
volatile sig_atomic_t g_in_mpi = 0;
volatile int64_t g_rank = 0, g_kind = 0, g_count = 0, g_seq = 0, g_step = -1;

char* put_int(char* p, int64_t v) {
  char digits[24];
  int n = 0;
  const bool neg = v < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (neg) *p++ = '-';
  while (n > 0) *p++ = digits[--n];
  return p;
}

char* put_str(char* p, const char* s) {
  while (*s != 0) *p++ = *s++;
  return p;
}

void on_crash(int sig) {
  if (!g_in_mpi) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  char buf[512];
  char* p = put_str(buf, "tessera: error: [rank ");
  p = put_int(p, g_rank);
  p = put_str(p, "] the MPI library crashed (signal ");
  p = put_int(p, sig);
  p = put_str(p, ") inside ");
  p = put_str(p, op_name(g_kind));
  p = put_str(p, " of ");
  p = put_int(p, g_count);
  p = put_str(p, " elements (collective #");
  p = put_int(p, g_seq);
  p = put_str(p, ", step ");
  p = put_int(p, g_step);
  p = put_str(p, "): ranks issued collectives of different sizes (a tessera bug) or the transport failed\n");
  [[maybe_unused]] const ssize_t w = write(STDERR_FILENO, buf, static_cast<size_t>(p - buf));
  _exit(kExitComm);
}

}  // namespace

// A float sum of one piece by ring (reduce-scatter, then allgather) over point-to-point
// messages: OpenMPI's non-blocking MPI_Iallreduce (libnbc) is ~10x slower than the blocking one
// on 4 MiB here (bench/collective_bench), while Isend/Irecv run at the blocking speed and can be
// progressed between layers. Chunk c's partial sum travels c, c+1, ..., c-1 and is added in that
// order on every run; the allgather copies the finished chunks, so all ranks hold the same bits.
struct Ring {
  float* data = nullptr;
  int64_t n = 0;
  int step = 0;         // 0 .. 2(N-1); N-1 reduce-scatter steps, then N-1 allgather steps
  bool posted = false;  // this step's send and receive are in flight
  int tag = 0;
  Op op;
  MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
};

struct MpiCommunicator::Guard {
  // Below this a float sum is one MPI_Iallreduce (its latency beats 2(N-1) ring steps).
  static constexpr size_t kRingMinBytes = size_t{64} << 10;

  MPI_Comm oob = MPI_COMM_NULL;   // world duplicate for the timeout queries only
  MPI_Comm ring = MPI_COMM_NULL;  // world duplicate for the ring's point-to-point messages
  double timeout_s = 300;
  int64_t seq = 0;
  uint64_t hash = 0x5eed;
  std::vector<MPI_Request> requests;
  std::vector<Op> ops;  // parallel to requests
  // Rings in flight at once. One poll then advances every started piece a step instead of one:
  // between GEMM tiles, polls come every 0.1-1 ms, and each ring step needs a poll on both ranks.
  static constexpr size_t kRingWindow = 4;
  std::vector<Ring> rings;  // in the order started; [ring_head, ring_head + kRingWindow) run
  size_t ring_head = 0;
  int ring_tag = 0;
  std::vector<float> scratch;  // per window slot, one reduce-scatter chunk: ≤ kMaxMessageBytes / N
  size_t scratch_slot = 0;     // floats per slot
  int rank = 0, size = 1;
  const Communicator* owner = nullptr;

  int64_t chunk_begin(const Ring& g, int c) const { return g.n * c / size; }

  // Ring i's slot of scratch: the rings running are within one window, so i mod the window
  // gives each its own.
  float* slot(size_t i) { return scratch.data() + (i % kRingWindow) * scratch_slot; }

  void post_step(Ring& g, float* chunk) {
    const int right = (rank + 1) % size, left = (rank + size - 1) % size;
    const bool reducing = g.step < size - 1;
    const int s = reducing ? g.step : g.step - (size - 1);
    const int send_c = ((reducing ? rank - s : rank + 1 - s) % size + size) % size;
    const int recv_c = ((reducing ? rank - s - 1 : rank - s) % size + size) % size;
    const int64_t sb = chunk_begin(g, send_c), se = chunk_begin(g, send_c + 1);
    const int64_t rb = chunk_begin(g, recv_c), re = chunk_begin(g, recv_c + 1);
    float* into = reducing ? chunk : g.data + rb;
    check(MPI_Irecv(into, static_cast<int>(re - rb), MPI_FLOAT, left, g.tag, ring, &g.req[0]), g.op);
    check(MPI_Isend(g.data + sb, static_cast<int>(se - sb), MPI_FLOAT, right, g.tag, ring, &g.req[1]), g.op);
    g.posted = true;
  }

  void finish_step(Ring& g, const float* chunk) {
    if (g.step < size - 1) {
      const int c = ((rank - g.step - 1) % size + size) % size;
      const int64_t b = chunk_begin(g, c), e = chunk_begin(g, c + 1);
      for (int64_t i = b; i < e; ++i) g.data[i] = chunk[i - b] + g.data[i];
    }
    ++g.step;
    g.posted = false;
  }

  // Advances the rings in the window as far as their messages allow; true when none is left.
  // Each ring's arithmetic is the same whatever the others do, so the bits do not depend on it.
  bool progress_rings() {
    for (;;) {
      const size_t end = std::min(rings.size(), ring_head + kRingWindow);
      for (size_t i = ring_head; i < end; ++i) {
        Ring& g = rings[i];
        while (g.step < 2 * (size - 1)) {
          if (!g.posted) post_step(g, slot(i));
          int done = 0;
          check(MPI_Testall(2, g.req, &done, MPI_STATUSES_IGNORE), g.op);
          if (!done) break;
          finish_step(g, slot(i));
        }
      }
      const size_t head = ring_head;
      while (ring_head < rings.size() && rings[ring_head].step == 2 * (size - 1)) ++ring_head;
      if (ring_head == rings.size()) break;
      if (ring_head == head || end == rings.size()) return false;  // nothing new entered the window
    }
    rings.clear();
    ring_head = 0;
    return true;
  }

  // Records an operation about to be posted; returns its slot.
  MPI_Request* post(int64_t kind, int64_t count) {
    hash = mix64(hash ^ mix64(static_cast<uint64_t>(kind) << 56 ^ static_cast<uint64_t>(count)));
    ops.push_back({seq++, kind, count, owner->step()});
    requests.push_back(MPI_REQUEST_NULL);
    return &requests.back();
  }

  // Posts an in-place reduction in pieces of at most kMaxMessageBytes.
  template <class T>
  void start(T* data, size_t n, MPI_Datatype type, MPI_Op op, int64_t kind) {
    const size_t piece = MpiCommunicator::kMaxMessageBytes / sizeof(T);
    for (size_t off = 0; off < n; off += piece) {
      const int count = static_cast<int>(std::min(piece, n - off));
      if constexpr (std::is_same_v<T, float>) {
        if (size > 1 && count * sizeof(float) >= kRingMinBytes) {
          hash = mix64(hash ^ mix64(static_cast<uint64_t>(kind) << 56 ^ static_cast<uint64_t>(count)));
          Ring g;
          g.data = data + off;
          g.n = count;
          g.tag = ring_tag;
          ring_tag = (ring_tag + 1) % 32000;
          g.op = {seq++, kind, count, owner->step()};
          rings.push_back(g);
          continue;
        }
      }
      MPI_Request* r = post(kind, count);
      check(MPI_Iallreduce(MPI_IN_PLACE, data + off, count, type, op, MPI_COMM_WORLD, r), ops.back());
    }
  }

  void check(int rc, const Op& op) const {
    if (rc != MPI_SUCCESS) throw CommError(std::string(op_name(op.kind)) + " failed in " + describe(op) + ": " + mpi_error(rc));
  }

  bool idle() const { return requests.empty() && rings.empty(); }

  // The oldest operation not yet complete.
  Op first_pending() {
    Op oldest{seq, -1, 0, owner->step()};
    if (ring_head < rings.size()) oldest = rings[ring_head].op;
    for (size_t i = 0; i < requests.size(); ++i) {
      int done = 0;
      MPI_Test(&requests[i], &done, MPI_STATUS_IGNORE);
      if (!done) {
        if (oldest.kind < 0 || ops[i].seq < oldest.seq) oldest = ops[i];
        break;
      }
    }
    return oldest;
  }

  // Replies to every query waiting on oob with where this rank is.
  void answer_queries() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, oob, &flag, &st);
      if (!flag) return;
      int64_t ignored = 0;
      MPI_Recv(&ignored, 1, MPI_INT64_T, st.MPI_SOURCE, kQueryTag, oob, MPI_STATUS_IGNORE);
      const Op here = first_pending();
      const int64_t reply[4] = {here.seq, here.kind, here.count, here.step};
      MPI_Send(reply, 4, MPI_INT64_T, st.MPI_SOURCE, kReplyTag, oob);  // 32 bytes: eager
    }
  }

  void wait() {
    if (idle()) return;
    const Op first = first_pending();
    g_kind = first.kind;
    g_count = first.count;
    g_seq = first.seq;
    g_step = first.step;
    struct InMpi {
      InMpi() { g_in_mpi = 1; }
      ~InMpi() { g_in_mpi = 0; }
    } in_mpi;
    wait_pending();
  }

  void wait_pending() {
    const Clock::time_point start = Clock::now();
    Clock::time_point next_probe = start;
    const auto limit = std::chrono::duration<double>(timeout_s);
    for (;;) {
      int done = 0;
      const bool rings_done = progress_rings();
      if (!requests.empty()) {
        check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE), ops.front());
      }
      if (rings_done && (done || requests.empty())) break;
      const Clock::time_point now = Clock::now();
      if (now >= next_probe) {
        answer_queries();
        next_probe = now + std::chrono::milliseconds(1);
      }
      if (now - start > limit) timed_out(std::chrono::duration<double>(now - start).count());
      // Spin first: a nap or a yield costs a time slice on a busy machine (measured: spinning
      // gave 5-15% more samples/s at N = 2 than 20 us naps). After a millisecond the core may
      // be shared with a rank we wait for (oversubscribed runs), so give it up then.
      if (now - start > std::chrono::milliseconds(1)) sched_yield();
    }
    requests.clear();
    ops.clear();
  }

  [[noreturn]] void timed_out(double waited) {
    const Op mine = first_pending();
    std::vector<int64_t> where(static_cast<size_t>(size) * 4, -1);
    std::vector<MPI_Request> asks;
    const int64_t query = mine.seq;
    for (int p = 0; p < size; ++p) {
      if (p == rank) continue;
      asks.push_back(MPI_REQUEST_NULL);
      MPI_Irecv(&where[static_cast<size_t>(p) * 4], 4, MPI_INT64_T, p, kReplyTag, oob, &asks.back());
      asks.push_back(MPI_REQUEST_NULL);
      MPI_Isend(&query, 1, MPI_INT64_T, p, kQueryTag, oob, &asks.back());
    }
    // Waiting ranks answer within a millisecond; give slow hosts a few seconds.
    const auto grace = std::chrono::duration<double>(std::clamp(timeout_s / 2, 1.0, 5.0));
    const Clock::time_point start = Clock::now();
    while (Clock::now() - start < grace) {
      int done = 0;
      MPI_Testall(static_cast<int>(asks.size()), asks.data(), &done, MPI_STATUSES_IGNORE);
      if (done) break;
      answer_queries();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::ostringstream silent, elsewhere, same;
    int n_silent = 0, n_elsewhere = 0;
    for (int p = 0; p < size; ++p) {
      if (p == rank) continue;
      const int64_t* w = &where[static_cast<size_t>(p) * 4];
      if (w[0] < 0) {
        silent << (n_silent++ ? "," : "") << p;
      } else if (w[0] != mine.seq || w[1] != mine.kind || w[2] != mine.count) {
        elsewhere << (n_elsewhere++ ? "; " : "") << "rank " << p << " waits in " << describe({w[0], w[1], w[2], w[3]});
      }
    }
    std::ostringstream msg;
    msg << "collective timed out";
    if (mine.step >= 0) msg << " at step " << mine.step;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", waited);
    msg << ": this rank waited " << secs << " s (distributed.timeout_s = " << timeout_s << ") in " << describe(mine);
    if (n_silent > 0) {
      msg << "; rank(s) " << silent.str()
          << " did not arrive and do not answer (stopped, killed, hung, or computing for longer than the timeout)";
    }
    if (n_elsewhere > 0) msg << "; " << elsewhere.str() << " (ranks issued different collectives: a tessera bug)";
    if (n_silent == 0 && n_elsewhere == 0) msg << "; every rank answers from the same collective (the MPI transport is stuck)";
    throw CommError(msg.str());
  }
};

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) : guard_(std::make_unique<Guard>()) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    // FUNNELED: tessera's worker threads never call MPI.
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    finalize_ = true;
  }
  // Errors come back as codes we turn into exceptions (then MPI_Abort in main), not a bare abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  MPI_Comm_dup(MPI_COMM_WORLD, &guard_->oob);
  MPI_Comm_set_errhandler(guard_->oob, MPI_ERRORS_RETURN);
  MPI_Comm_dup(MPI_COMM_WORLD, &guard_->ring);
  MPI_Comm_set_errhandler(guard_->ring, MPI_ERRORS_RETURN);
  guard_->scratch_slot = kMaxMessageBytes / sizeof(float) / static_cast<size_t>(size_) + 1;
  if (size_ > 1) guard_->scratch.resize(Guard::kRingWindow * guard_->scratch_slot);
  guard_->rings.reserve(64);
  guard_->rank = rank_;
  guard_->size = size_;
  guard_->owner = this;
  g_rank = rank_;
  for (int sig : {SIGSEGV, SIGBUS}) signal(sig, on_crash);
  // A step posts one request per bucket piece: reserve so the step loop does not allocate.
  guard_->requests.reserve(64);
  guard_->ops.reserve(64);
}

MpiCommunicator::~MpiCommunicator() {
  if (finalize_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      if (guard_->oob != MPI_COMM_NULL) MPI_Comm_free(&guard_->oob);
      if (guard_->ring != MPI_COMM_NULL) MPI_Comm_free(&guard_->ring);
      MPI_Finalize();
    }
  }
}

void MpiCommunicator::set_timeout(double seconds) {
  TESSERA_CHECK(seconds > 0, "timeout must be positive, got ", seconds);
  guard_->timeout_s = seconds;
}

uint64_t MpiCommunicator::sequence_hash() const { return guard_->hash; }

void MpiCommunicator::start_allreduce_sum(std::span<float> data) {
  guard_->start(data.data(), data.size(), MPI_FLOAT, MPI_SUM, kSumFloat);
}

void MpiCommunicator::progress() {
  if (guard_->idle()) return;
  int done = 0;
  g_in_mpi = 1;  // the handler then names the last collective waited for
  guard_->progress_rings();
  if (!guard_->requests.empty()) {
    guard_->check(MPI_Testall(static_cast<int>(guard_->requests.size()), guard_->requests.data(), &done,
                              MPI_STATUSES_IGNORE),
                  guard_->ops.front());
  }
  g_in_mpi = 0;
}

void MpiCommunicator::wait_all() { guard_->wait(); }

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  start_allreduce_sum(data);
  guard_->wait();
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  guard_->start(data.data(), data.size(), MPI_DOUBLE, MPI_SUM, kSumDouble);
  guard_->wait();
}

void MpiCommunicator::allreduce_max(std::span<int64_t> data) {
  guard_->start(data.data(), data.size(), MPI_INT64_T, MPI_MAX, kMaxInt64);
  guard_->wait();
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  broadcast(std::as_writable_bytes(data), root);
}

void MpiCommunicator::broadcast(std::span<std::byte> data, int root) {
  const size_t piece = kMaxMessageBytes;
  for (size_t off = 0; off < data.size(); off += piece) {
    const int count = static_cast<int>(std::min(piece, data.size() - off));
    MPI_Request* r = guard_->post(kBroadcast, count);
    guard_->check(MPI_Ibcast(data.data() + off, count, MPI_BYTE, root, MPI_COMM_WORLD, r), guard_->ops.back());
  }
  guard_->wait();
}

std::vector<uint64_t> MpiCommunicator::allgather(uint64_t value) {
  std::vector<uint64_t> all(static_cast<size_t>(size_));
  MPI_Request* r = guard_->post(kGatherU64, 1);
  guard_->check(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD, r),
                guard_->ops.back());
  guard_->wait();
  return all;
}

void MpiCommunicator::allgather(std::span<const double> mine, std::span<double> all) {
  TESSERA_CHECK(all.size() == mine.size() * static_cast<size_t>(size_), "allgather: output holds ", all.size(),
                " values, expected ", mine.size() * static_cast<size_t>(size_));
  const int count = static_cast<int>(mine.size());
  MPI_Request* r = guard_->post(kGatherDouble, count);
  guard_->check(MPI_Iallgather(mine.data(), count, MPI_DOUBLE, all.data(), count, MPI_DOUBLE, MPI_COMM_WORLD, r),
                guard_->ops.back());
  guard_->wait();
}

std::vector<std::string> MpiCommunicator::host_names() {
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  std::vector<char> all(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
  MPI_Request* r = guard_->post(kGatherHost, MPI_MAX_PROCESSOR_NAME);
  guard_->check(MPI_Iallgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                               MPI_COMM_WORLD, r),
                guard_->ops.back());
  guard_->wait();
  std::vector<std::string> out;
  for (int r2 = 0; r2 < size_; ++r2) out.emplace_back(all.data() + static_cast<size_t>(r2) * MPI_MAX_PROCESSOR_NAME);
  return out;
}

void MpiCommunicator::barrier() {
  MPI_Request* r = guard_->post(kBarrier, 0);
  guard_->check(MPI_Ibarrier(MPI_COMM_WORLD, r), guard_->ops.back());
  guard_->wait();
}

void MpiCommunicator::abort_all(int code) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace tessera
