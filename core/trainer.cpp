// Trainer::run. The loss of each rank is scaled by 1/B (global batch), so the allreduced sum of
// gradients is the global mean and learning rates do not depend on N.
#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "core/optimizer.h"
#include "kernels/dense.h"

namespace tessera {

void check_batch_fits(const TrainConfig& cfg, int64_t rows) {
  if (rows >= cfg.train.batch_size) return;
  const std::string files = cfg.data.train.empty()
                                ? std::string("training data")
                                : "training data (" + cfg.data.train[0] + (cfg.data.train.size() > 1 ? ", ..." : "") + ")";
  throw DataError(files + " has " + std::to_string(rows) + " rows, fewer than train.batch_size = " +
                  std::to_string(cfg.train.batch_size) + ": lower train.batch_size or add data");
}

void check_precision(const TrainSection& train) {
  if (train.precision != Precision::kBf16) return;
  if (const char* why = kernels::bf16_unsupported_reason()) {
    throw ConfigError(std::string("config key 'train.precision': 'bf16' cannot run here: ") + why +
                      " (use \"fp32\")");
  }
}

int64_t total_steps(const TrainSection& train, int64_t rows) {
  const int64_t per_epoch = rows / train.batch_size;
  // Saturating: epochs may be huge when max_steps is the real limit.
  int64_t total = per_epoch > 0 && train.epochs > INT64_MAX / per_epoch ? INT64_MAX : per_epoch * train.epochs;
  if (train.max_steps > 0) total = std::min(total, train.max_steps);
  return total;
}

Trainer::Trainer(const TrainConfig& cfg, Model& model, Communicator& comm, BatchSource& train,
                 BatchSource* validation, std::function<void(const std::string&)> metrics,
                 Progress& progress)
    : cfg_(cfg), model_(model), comm_(comm), train_(train), validation_(validation),
      metrics_(std::move(metrics)), progress_(progress), grads_(model.spec().param_count()),
      optimizer_(cfg.optimizer, model.spec().param_count(), total_steps(cfg.train, train.rows())),
      reducer_(model.spec(), cfg.distributed.bucket_mb, cfg.distributed.overlap, comm) {
  check_precision(cfg.train);
  layer_done_ = [this](int layer) { reducer_.layer_done(layer); };
  // One rank: each gradient is final where its product computes it (no reduction to wait for),
  // so the SGD update is written from there instead of in a pass over all parameters after the
  // step: 3% of a 1-core step of the reference MLP. Into a second parameter buffer (and
  // momentum), swapped in when the step's checks pass, so a non-finite step still changes no
  // weight. Float32 only (the bf16 products keep their own path), and tessera's own engines
  // only: Eigen's and oneDNN's builds would run the update in a serial pass per layer.
  fused_ = cfg.optimizer.fused && optimizer_.can_fuse() && comm.size() == 1 &&
           cfg.train.precision == Precision::kFp32 && kernels::dense_backward_fuses_sgd();
  if (fused_) {
    optimizer_.prepare_fused();
    params_next_ = FlatBuffer(model.spec().param_count());
  }
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

// Every rank has the same stats, so every rank comes here together; the allgather that names
// the ranks runs only on this failure path.
Trainer::StepStats Trainer::non_finite(int64_t step, bool mine) {
  const std::vector<uint64_t> flags = comm_.allgather(mine ? 1 : 0);
  std::string ranks;
  for (size_t r = 0; r < flags.size(); ++r) {
    if (flags[r] != 0) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
  }
  const std::string where = ranks.empty() ? "in the global loss sum" : "on rank(s) " + ranks;
  if (cfg_.train.non_finite == "skip") {
    ++skipped_;
    return {0.0, 0.0, true};
  }
  throw Error("training diverged: NaN or infinity in the loss or gradients " + where + " at step " +
              std::to_string(step) + "; every rank stopped before the optimizer step, so no weights changed: "
              "lower optimizer.lr, set optimizer.grad_clip_norm, or set train.non_finite = \"skip\"");
}

Trainer::StepStats Trainer::step(FlatBuffer& params, int64_t epoch, int64_t step_in_epoch, int64_t step) {
  const ModelSpec& spec = model_.spec();
  const double scale = 1.0 / static_cast<double>(cfg_.train.batch_size);
  comm_.set_step(step);
  if (fault_.kind == "stall" && fault_.rank == comm_.rank() && fault_.step == step) {
    // Stops here until killed: a test kills the job at a known checkpoint, however loaded the
    // machine is.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const Clock::time_point t0 = Clock::now();
  const Batch b = train_.next(epoch, step_in_epoch);
  const Clock::time_point t1 = Clock::now();
  float* out = model_.forward(params.data(), b.x, b.rows, cfg_.train.precision);
  const kernels::LossResult lr = task_loss(spec.task, out, b, out, spec.outputs(), scale);
  if (fault_.kind == "extra_collective" && fault_.rank == comm_.rank() && fault_.step == step) {
    double extra[3] = {0, 0, 0};
    comm_.allreduce_sum(std::span<double>(extra, 3));
  }
  if (fault_.kind == "other_op" && fault_.step == step) {
    // Every rank reduces 40 scratch bytes, rank fault_.rank with another operation: a
    // same-size mismatch that MPI completes without noticing.
    int64_t scratch[5] = {0, 0, 0, 0, 0};
    if (fault_.rank == comm_.rank()) {
      comm_.allreduce_max(std::span<int64_t>(scratch, 5));
    } else {
      comm_.allreduce_sum(std::span<double>(reinterpret_cast<double*>(scratch), 5));
    }
  }
  if (fault_.kind == "nan" && fault_.rank == comm_.rank() && fault_.step == step) {
    // Into the loss gradient, before backward: the gradient reduction may start sending a
    // layer's gradients from inside its GEMM, so a value poisoned after it would not be checked.
    out[0] = std::numeric_limits<float>::quiet_NaN();
  }
  reducer_.begin(grads_.data());
  kernels::SgdUpdate sgd;
  if (fused_) sgd = optimizer_.fused_update(params.data(), params_next_.data(), step);
  model_.backward(params.data(), b.x, out, grads_.data(), b.rows, layer_done_, fused_ ? &sgd : nullptr);
  const Clock::time_point t2 = Clock::now();
  reducer_.finish();
  // The non-finite flag and a 12-bit fingerprint f of this rank's collective sequence ride on
  // the stats reduction every step already makes. N·Σf² = (Σf)² exactly when every f is equal
  // (integers, exact in double for N < 20000), so ranks that issued different collectives with
  // the same sizes (which MPI cannot see) are caught within a step or two.
  const bool mine = reducer_.local_non_finite() || !std::isfinite(lr.loss_sum);
  const uint64_t sequence = comm_.sequence_hash();
  const double f = static_cast<double>(sequence >> 52);
  double stats[5] = {lr.loss_sum, lr.correct, mine ? 1.0 : 0.0, f, f * f};
  comm_.allreduce_sum(std::span<double>(stats, 5));
  const Clock::time_point t3 = Clock::now();
  if (stats[4] * comm_.size() != stats[3] * stats[3]) check_sequence(sequence, step);
  times_.data_wait += seconds(t0, t1);
  times_.comm_wait += seconds(t2, t3);
  if (stats[2] > 0 || !std::isfinite(stats[0])) {
    times_.compute += seconds(t1, t2);
    return non_finite(step, mine);
  }
  if (fused_) {
    std::swap(params, params_next_);
    optimizer_.commit_fused();
  } else {
    optimizer_.step(params.data(), grads_.data(), step);
  }
  times_.compute += seconds(t1, t2) + seconds(t3, Clock::now());
  return {stats[0], stats[1], false};
}

namespace {
void throw_if_sequences_differ(const std::vector<uint64_t>& hashes, int64_t step) {
  const std::string differ = ranks_differing(hashes);
  if (!differ.empty()) {
    throw CommError("ranks issued different collectives: the sequence of collectives (operation and size) of rank(s) " +
                    differ + " differs from rank 0's by step " + std::to_string(step) +
                    " (a tessera bug, or different tessera binaries on different ranks)");
  }
}
}  // namespace

// All ranks saw the same fingerprint sums, so all come here together and this allgather is
// matched; it names the ranks.
void Trainer::check_sequence(uint64_t sequence, int64_t step) {
  throw_if_sequences_differ(comm_.allgather(sequence), step);
}

void Trainer::add_rank_times(JsonObject& line, int64_t step, double span, int64_t bytes_read) {
  const int n = comm_.size();
  constexpr int kFields = 5;  // compute, data wait, comm wait, sequence hash (bits), bytes read
  double mine[kFields] = {times_.compute, times_.data_wait, times_.comm_wait, 0.0, static_cast<double>(bytes_read)};
  const uint64_t hash = comm_.sequence_hash();
  std::memcpy(&mine[3], &hash, sizeof hash);
  std::vector<double> all(static_cast<size_t>(n) * kFields);
  comm_.allgather(std::span<const double>(mine, kFields), all);
  times_ = {};
  std::vector<uint64_t> hashes(static_cast<size_t>(n));
  std::vector<std::pair<double, int>> busy(static_cast<size_t>(n));
  double sum[3] = {0, 0, 0};
  double comm_min = all[2];
  double wait_max = 0.0, bytes = 0.0;
  for (int r = 0; r < n; ++r) {
    const double* t = &all[static_cast<size_t>(r) * kFields];
    wait_max = std::max(wait_max, t[1]);
    bytes += t[4];
    std::memcpy(&hashes[static_cast<size_t>(r)], &t[3], sizeof(uint64_t));
    for (int k = 0; k < 3; ++k) sum[k] += t[k];
    comm_min = std::min(comm_min, t[2]);
    busy[static_cast<size_t>(r)] = {t[0] + t[1], r};
  }
  throw_if_sequences_differ(hashes, step);
  // The rank that waited least arrived last: what it waited is communication no rank could hide
  // (the others' extra wait is for that rank).
  line.add("compute_s", sum[0] / n).add("data_wait_s", sum[1] / n).add("comm_wait_s", sum[2] / n);
  line.add("comm_wait_min_s", comm_min);
  // Input telemetry: the slowest input pipeline sets the pace, so the maximum over ranks.
  line.add("data_wait_frac", std::min(1.0, wait_max / std::max(span, 1e-9)));
  line.add("bytes_read", static_cast<int64_t>(bytes));
  // Busy time (compute + data wait) decides who the others wait for; the slowest three are
  // named with how far they are behind the median rank.
  std::sort(busy.begin(), busy.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  const double median = busy[busy.size() / 2].first;
  std::string slowest = "[";
  for (size_t i = 0; i < std::min<size_t>(3, busy.size()); ++i) {
    JsonObject s;
    s.add("rank", busy[i].second).add("busy_s", busy[i].first).add("behind_median_s", busy[i].first - median);
    slowest += (i ? "," : "") + s.str();
  }
  line.add_raw("slowest_ranks", slowest + "]");
}

void Trainer::run_eval(const FlatBuffer& params, int64_t step, int64_t epoch, TrainSummary& summary) {
  if (validation_ == nullptr && eval_sets_.empty()) return;
  auto one = [&](const std::string& split, BatchSource& source) {
    const EvalResult r = evaluate(model_, params.data(), source, comm_);
    JsonObject line;
    line.add("event", "eval").add("step", step).add("epoch", epoch).add("split", split);
    line.add("rows", r.rows).add("loss", r.loss);
    const bool regression = model_.spec().task == Task::kRegression;
    if (regression) {
      line.add("rmse", r.rmse);
    } else {
      line.add("accuracy", r.accuracy);
    }
    if (metrics_) metrics_(line.str());
    char msg[200];
    std::snprintf(msg, sizeof msg, "eval step %lld: %s loss %.4f %s %.4f", static_cast<long long>(step),
                  split.c_str(), r.loss, regression ? "rmse" : "accuracy", regression ? r.rmse : r.accuracy);
    progress_.note(msg);
    return r;
  };
  if (validation_ != nullptr) {
    summary.last_eval = one("validation", *validation_);
    summary.evaluated = true;
  }
  for (const auto& [name, source] : eval_sets_) one(name, *source);
}

TrainSummary Trainer::run(FlatBuffer& params, const TrainState& start) {
  const int64_t batch = cfg_.train.batch_size;
  check_batch_fits(cfg_, train_.rows());
  const int64_t per_epoch = train_.rows() / batch;
  const int64_t total = total_steps(cfg_.train, train_.rows());
  const ModelSpec& spec = model_.spec();

  TrainSummary summary;
  summary.last_loss = start.last_loss;
  const auto t0 = std::chrono::steady_clock::now() -
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(start.elapsed_s));
  auto interval_start = std::chrono::steady_clock::now();
  double interval[3] = {start.interval[0], start.interval[1], start.interval[2]};
  int64_t step = start.step;
  int64_t evaluated_at = start.evaluated_at;
  // Steps run since interval_start: after a resume the loss sums continue the interrupted
  // interval, but the rate counts only what this process ran in the time it measured.
  int64_t interval_steps = 0;
  skipped_ = start.skipped_steps;
  // Every source's reads since it was opened (the read-ahead may have started before run()).
  auto read_so_far = [&] {
    int64_t n = train_.bytes_read() + (validation_ ? validation_->bytes_read() : 0);
    for (const auto& [name, source] : eval_sets_) n += source->bytes_read();
    return n;
  };
  int64_t bytes_at_line = 0;
  times_ = {};
  for (int64_t epoch = step / per_epoch; epoch < cfg_.train.epochs && step < total; ++epoch) {
    for (int64_t s = step % per_epoch; s < per_epoch && step < total; ++s) {
      const StepStats stats_step = this->step(params, epoch, s, step);
      const double stats[2] = {stats_step.loss_sum, stats_step.correct};
      const double step_loss = stats[0] / static_cast<double>(batch);
      ++step;
      if (!stats_step.skipped) {
        interval[0] += stats[0];
        interval[1] += stats[1];
        interval[2] += static_cast<double>(batch);
      }
      interval_steps += 1;

      const auto now = std::chrono::steady_clock::now();
      const double elapsed = std::chrono::duration<double>(now - t0).count();
      const double rate = static_cast<double>((step - start.step) * batch) / std::max(elapsed - start.elapsed_s, 1e-9);
      progress_.step(step, step_loss, rate);
      const bool last = step == total;
      if (step % cfg_.train.log_every == 0 || last) {
        const double span = std::chrono::duration<double>(now - interval_start).count();
        // A log interval whose steps were all skipped has no loss: reported as NaN (JSON null).
        const double mean_loss = interval[2] > 0 ? interval[0] / interval[2] : std::nan("");
        const double samples = static_cast<double>(interval_steps * batch);
        const int64_t bytes = read_so_far() - bytes_at_line;
        bytes_at_line = read_so_far();
        JsonObject line;
        line.add("event", "train").add("step", step).add("epoch", epoch).add("loss", mean_loss);
        if (spec.task != Task::kRegression) line.add("accuracy", interval[1] / interval[2]);
        line.add("lr", optimizer_.lr(step - 1))
            .add("samples_per_s", samples / std::max(span, 1e-9))
            .add("time_s", elapsed)
            .add("skipped_steps", skipped_);
        add_rank_times(line, step, span, bytes);
        if (metrics_) metrics_(line.str());
        progress_.log_line(step, epoch, mean_loss, optimizer_.lr(step - 1), samples / std::max(span, 1e-9));
        summary.last_loss = mean_loss;
        interval[0] = interval[1] = interval[2] = 0;
        interval_steps = 0;
        interval_start = now;
      }
      const bool epoch_end = s + 1 == per_epoch || last;
      if (cfg_.train.eval_every > 0 ? step % cfg_.train.eval_every == 0 : epoch_end) {
        run_eval(params, step, epoch, summary);
        evaluated_at = step;
      }
      const int64_t every = cfg_.checkpoint.every_steps;
      if (checkpoint_ && (every > 0 ? step % every == 0 || last : epoch_end)) {
        TrainState st;
        st.step = step;
        st.evaluated_at = evaluated_at;
        std::copy_n(interval, 3, st.interval);
        st.last_loss = summary.last_loss;
        st.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        st.skipped_steps = skipped_;
        checkpoint_(st);
      }
    }
  }
  // The final model is always evaluated, whatever eval_every is.
  if (evaluated_at != step) run_eval(params, step, step > 0 ? (step - 1) / per_epoch : 0, summary);
  progress_.finish();
  summary.steps = step;
  summary.skipped_steps = skipped_;
  comm_.set_step(-1);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.samples_per_s = static_cast<double>((step - start.step) * batch) / std::max(summary.seconds - start.elapsed_s, 1e-9);
  return summary;
}

}  // namespace tessera
