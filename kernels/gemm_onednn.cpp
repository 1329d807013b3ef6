// The oneDNN GEMM engine for the float and bf16 dense products: each fixed output tile is one
// oneDNN 2.x matmul primitive run single-threaded on the calling oneTBB thread, with the bias and
// an optional ReLU fused into its epilogue. Primitives are cached per tile shape; each thread owns
// its stream, memory objects and scratchpad per primitive, so concurrent tiles share nothing
// mutable and steady-state calls create nothing.
#include "kernels/gemm_engines.h"

#include <stdexcept>

#include "kernels/dense.h"
#include "kernels/transpose.h"

#if TESSERA_HAVE_ONEDNN

#include <omp.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/task_arena.h>
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <type_traits>
#include <vector>

namespace tessera::kernels {
namespace {

using dnnl::memory;

// What a tile product stages in a dense block its thread holds: its left operand, filled by the
// caller before the product, or its destination, copied out by the caller after it.
enum class Staged : int64_t { kNone = 0, kA = 1, kC = 2 };

// One tile product: C (m, n) = A (m, k) · B (k, n) [+ bias (1, n)] [then relu], every operand
// plain row/column strided; A and B float or bf16, C and the bias float. The strides are part
// of the key: they pick the kernel.
struct TileKey {
  // m, n, k, A strides (2), B strides (2), C row stride, has bias, relu, bf16 A and B, Staged.
  std::array<int64_t, 12> v{};
  bool operator<(const TileKey& o) const { return v < o.v; }
  int64_t m() const { return v[0]; }
  int64_t n() const { return v[1]; }
  int64_t k() const { return v[2]; }
  bool bias() const { return v[8] != 0; }
  bool relu() const { return v[9] != 0; }
  bool bf16() const { return v[10] != 0; }
  Staged staged() const { return static_cast<Staged>(v[11]); }
};

TileKey tile_key(int64_t m, int64_t n, int64_t k, int64_t as0, int64_t as1, int64_t bs0,
                 int64_t bs1, int64_t ldc, bool bias, bool relu, bool bf16 = false,
                 Staged staged = Staged::kNone) {
  return TileKey{{m, n, k, as0, as1, bs0, bs1, ldc, bias ? 1 : 0, relu ? 1 : 0, bf16 ? 1 : 0,
                  static_cast<int64_t>(staged)}};
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// What one thread needs to run one primitive: memory objects whose data handles are swapped in
// per call, its scratchpad, the argument array handed to the C API (the C++ execute builds
// a std::unordered_map and a std::vector per call), and the dense block of a staged operand.
struct ThreadState {
  dnnl::stream stream;
  memory a, b, bias, c, scratchpad;
  std::array<dnnl_exec_arg_t, 5> args{};
  int nargs = 0;
  std::vector<float> staged;
};

// Per-thread states live in one slot per oneTBB arena slot, all created with the primitive, so
// a thread that meets this tile shape for the first time in a later step still finds its state
// ready (lazily created per-thread state would make that step allocate). Threads outside an
// arena (a kernel called with a single tile before oneTBB ever ran) share no slot: they use
// `others`, created on their first call. Slots are per arena index, so two explicit
// tbb::task_arena running these kernels at once would collide; tessera uses only the default
// arena (the contract in gemm_engines.h).
struct Primitive {
  dnnl::matmul matmul;
  memory::desc a_md, b_md, bias_md, c_md, scratchpad_md;
  int64_t staged_floats = 0;
  std::vector<ThreadState> slots;
  tbb::enumerable_thread_specific<ThreadState> others;
};

void init_thread_state(const Primitive& p, ThreadState& s);

std::unique_ptr<Primitive> make_primitive(const TileKey& key) {
  auto p = std::make_unique<Primitive>();
  const auto f32 = memory::data_type::f32;
  const auto in_type = key.bf16() ? memory::data_type::bf16 : f32;
  p->a_md = memory::desc({key.m(), key.k()}, in_type, {key.v[3], key.v[4]});
  p->b_md = memory::desc({key.k(), key.n()}, in_type, {key.v[5], key.v[6]});
  p->c_md = memory::desc({key.m(), key.n()}, f32, {key.v[7], 1});
  if (key.bias()) p->bias_md = memory::desc({1, key.n()}, f32, {key.n(), 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (key.relu()) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::desc desc(p->a_md, p->b_md, p->bias_md, p->c_md);
  const dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
  p->scratchpad_md = pd.scratchpad_desc();
  p->matmul = dnnl::matmul(pd);
  // The staging blocks are made here, with the primitive, so that no step after warm-up
  // allocates them.
  if (key.staged() == Staged::kA) p->staged_floats = key.m() * key.k();
  if (key.staged() == Staged::kC) p->staged_floats = key.m() * key.n();
  p->slots.resize(static_cast<size_t>(tbb::this_task_arena::max_concurrency()));
  for (ThreadState& s : p->slots) init_thread_state(*p, s);
  return p;
}

// The cache of primitives, filled on first use of each key (warm-up) and never pruned: the
// dense layers of one model need a few dozen tile shapes.
Primitive& primitive_for(const TileKey& key) {
  static std::mutex mu;
  static std::map<TileKey, std::unique_ptr<Primitive>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make_primitive(key)).first;
  return *it->second;
}

void init_thread_state(const Primitive& p, ThreadState& s) {
  const dnnl::engine& engine = cpu_engine();
  s.stream = dnnl::stream(engine);
  s.a = memory(p.a_md, engine, DNNL_MEMORY_NONE);
  s.b = memory(p.b_md, engine, DNNL_MEMORY_NONE);
  s.c = memory(p.c_md, engine, DNNL_MEMORY_NONE);
  s.args[s.nargs++] = {DNNL_ARG_SRC, s.a.get()};
  s.args[s.nargs++] = {DNNL_ARG_WEIGHTS, s.b.get()};
  s.args[s.nargs++] = {DNNL_ARG_DST, s.c.get()};
  if (p.bias_md) {
    s.bias = memory(p.bias_md, engine, DNNL_MEMORY_NONE);
    s.args[s.nargs++] = {DNNL_ARG_BIAS, s.bias.get()};
  }
  if (p.scratchpad_md.get_size() > 0) {
    s.scratchpad = memory(p.scratchpad_md, engine);  // owned by oneDNN, kept for the process
    s.args[s.nargs++] = {DNNL_ARG_SCRATCHPAD, s.scratchpad.get()};
  }
  s.staged.resize(static_cast<size_t>(p.staged_floats));
}

ThreadState& thread_state(Primitive& p) {
  const int slot = tbb::this_task_arena::current_thread_index();
  if (slot >= 0 && static_cast<size_t>(slot) < p.slots.size()) return p.slots[slot];
  ThreadState& s = p.others.local();
  if (!s.stream) init_thread_state(p, s);
  return s;
}

// for_tiles with the block tiles (the forward and dX products, and every bf16 product).
template <class Tile>
void for_block_tiles(int64_t m, int64_t n, const Tile& tile) {
  for_tiles(m, n, kOneDnnTileRows, kOneDnnTileCols, tile);
}

// Runs one tile product on the calling thread. Debian's oneDNN uses the OpenMP runtime: with more
// than one OpenMP thread every call would start its own team inside a oneTBB task, so the
// calling thread is set to one (cheap; it also makes the primitive's choice of kernel, made at
// creation, the single-thread one on every thread). For a key with Staged::kA, stage(float* a)
// fills the thread's dense left operand first and `a` is ignored; with Staged::kC the product
// goes to the thread's dense block, then stage(const float* c) copies it out, and `c` is ignored.
template <class Stage = std::nullptr_t>
void run_tile(const TileKey& key, const void* a, const void* b, const float* bias, float* c,
              const Stage& stage = nullptr) {
  constexpr bool kStageC = std::is_invocable_v<Stage, const float*>;
  constexpr bool kStageA = !kStageC && std::is_invocable_v<Stage, float*>;
  omp_set_num_threads(1);
  Primitive& p = primitive_for(key);
  ThreadState& s = thread_state(p);
  if constexpr (kStageA) {
    stage(s.staged.data());
    a = s.staged.data();
  }
  if constexpr (kStageC) c = s.staged.data();
  s.a.set_data_handle(const_cast<void*>(a));
  s.b.set_data_handle(const_cast<void*>(b));
  s.c.set_data_handle(c);
  if (bias != nullptr) s.bias.set_data_handle(const_cast<float*>(bias));
  const dnnl_status_t status =
      dnnl_primitive_execute(p.matmul.get(), s.stream.get(), s.nargs, s.args.data());
  if (status != dnnl_success) {
    throw std::runtime_error("oneDNN matmul failed with status " + std::to_string(status));
  }
  if constexpr (kStageC) stage(static_cast<const float*>(s.staged.data()));
}

// Rows [r0, r1) x columns [c0, c1) of d (leading dim ld) = the dense tile t, or 0 where
// relu_x <= 0 when relu_x is not nullptr (relu_backward_tile's selection, in the same pass).
void unstage_tile(const float* t, float* d, const float* relu_x, int64_t ld, int64_t r0,
                  int64_t r1, int64_t c0, int64_t c1) {
  const int64_t cols = c1 - c0;
  for (int64_t r = r0; r < r1; ++r) {
    const float* tr = t + (r - r0) * cols;
    float* dr = d + r * ld + c0;
    if (relu_x == nullptr) {
      std::copy(tr, tr + cols, dr);
      continue;
    }
    const float* ar = relu_x + r * ld + c0;
    for (int64_t c = 0; c < cols; ++c) dr[c] = ar[c] <= 0.0f ? 0.0f : tr[c];
  }
}

// Row tiles of the dW product: rows [r0, r1) spanning all columns up to kOneDnnRowTileCols.
template <class Tile>
void for_dw_tiles(int64_t m, int64_t n, const Tile& tile) {
  for_tiles(m, n, kOneDnnDwTileRows, kOneDnnRowTileCols, tile);
}

}  // namespace

bool onednn_available() { return true; }

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b [relu]
void onednn_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu) {
  for_block_tiles(n, out, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    // A = x rows, B = wᵀ columns [c0, c1) (w rows read with strides (1, in)). A tile narrower
    // than y goes through a dense block (see gemm_engines.h).
    const float* bias = b == nullptr ? nullptr : b + c0;
    if (c1 - c0 == out) {
      const TileKey key = tile_key(r1 - r0, out, in, in, 1, 1, in, out, b != nullptr, relu);
      run_tile(key, x + r0 * in, w + c0 * in, bias, y + r0 * out);
      return;
    }
    const TileKey key = tile_key(r1 - r0, c1 - c0, in, in, 1, 1, in, c1 - c0, b != nullptr,
                                 relu, false, Staged::kC);
    run_tile(key, x + r0 * in, w + c0 * in, bias, nullptr,
             [&](const float* t) { unstage_tile(t, y, nullptr, out, r0, r1, c0, c1); });
  });
}

namespace {

// dw (out, in) = dyᵀ·x in row blocks of dw. dyᵀ read in place is a strided left operand, which
// oneDNN 2.6 runs on gemm:jit at 155-175 GFLOP/s here; each tile instead copies its columns of
// dy transposed into a dense block (≈ 2% of the product's time) and the product runs at
// 195-205 (measured one product after another, 1 thread). The copy also sums the bias gradient.
void onednn_weight_grad(const float* dy, const float* x, float* dw, float* db, int64_t n,
                        int64_t in, int64_t out) {
  for_dw_tiles(out, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const TileKey key =
        tile_key(r1 - r0, c1 - c0, n, n, 1, in, 1, in, false, false, false, Staged::kA);
    run_tile(key, nullptr, x + c0, nullptr, dw + r0 * in + c0,
             [&](float* a) {
               // a (r1 - r0, n) = columns [r0, r1) of dy transposed; the tile at column 0 sums
               // db[r0, r1) in the same pass, rows in order.
               float* dbt = db != nullptr && c0 == 0 ? db + r0 : nullptr;
               if (dbt != nullptr) std::fill(dbt, dbt + (r1 - r0), 0.0f);
               transpose_block(dy + r0, out, n, r1 - r0, a, n, dbt);
             });
    report_dw_tile(dw, db, in, out, r0, r1, c0, c1);
  });
  bias_backward_without_inputs(dy, db, n, in, out);
}

// dx (n, in) = dy·w [⊙ (x > 0)]: A = dy rows, B = w's columns [c0, c1).
void onednn_input_grad(const float* dy, const float* x, const float* w, float* dx, int64_t n,
                       int64_t in, int64_t out, bool relu_dx) {
  for_block_tiles(n, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    if (c1 - c0 == in) {
      const TileKey key = tile_key(r1 - r0, in, out, out, 1, in, 1, in, false, false);
      run_tile(key, dy + r0 * out, w, nullptr, dx + r0 * in);
      if (relu_dx) relu_backward_tile(x, dx, in, r0, r1, c0, c1);
      return;
    }
    // A tile narrower than dx goes through a dense block, masked on the way out.
    const TileKey key = tile_key(r1 - r0, c1 - c0, out, out, 1, in, 1, c1 - c0, false, false,
                                 false, Staged::kC);
    run_tile(key, dy + r0 * out, w + c0, nullptr, nullptr, [&](const float* t) {
      unstage_tile(t, dx, relu_dx ? x : nullptr, in, r0, r1, c0, c1);
    });
  });
}

}  // namespace

// dy (n, out), x (n, in), w (out, in) -> dw (out, in), db (out), dx (n, in); all overwritten.
void onednn_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx) {
  onednn_weight_grad(dy, x, dw, db, n, in, out);
  if (dx != nullptr) onednn_input_grad(dy, x, w, dx, n, in, out, relu_dx);
}

const char* onednn_bf16_unsupported_reason() {
  // oneDNN's ISA query covers both the CPU and a cap set with ONEDNN_MAX_CPU_ISA; cpuid is asked
  // too so the message can say which of the two it is.
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  const unsigned need = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
  if ((isa & need) == need) return nullptr;
  if (!__builtin_cpu_supports("avx512bf16")) {
    return "this CPU lacks AVX512_BF16, which the bf16 products need";
  }
  return "oneDNN is capped below avx512_core_bf16 by the environment variable ONEDNN_MAX_CPU_ISA";
}

namespace {
void require_bf16() {
  if (const char* why = onednn_bf16_unsupported_reason()) throw std::logic_error(why);
}
}  // namespace

// x (n, in), w (out, in) bf16 -> y (n, out) = x·wᵀ + b [relu], y16 = bf16(y) per tile.
void onednn_dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                        int64_t n, int64_t in, int64_t out, bool relu) {
  require_bf16();
  for_block_tiles(n, out, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const TileKey key =
        tile_key(r1 - r0, c1 - c0, in, in, 1, 1, in, out, b != nullptr, relu, true);
    run_tile(key, x + r0 * in, w + c0 * in, b == nullptr ? nullptr : b + c0, y + r0 * out + c0);
    if (y16 != nullptr) tile_to_bf16(y, y16, nullptr, n, out, r0, r1, c0, c1);
  });
}

void onednn_dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out) {
  require_bf16();
  // dw (out, in) = dyᵀ·x: A = rows [r0, r1) of the dense dyᵀ copy, B = x's columns [c0, c1).
  for_block_tiles(out, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const TileKey key = tile_key(r1 - r0, c1 - c0, n, n, 1, in, 1, in, false, false, true);
    run_tile(key, a.dyt16 + r0 * n, a.x16 + c0, nullptr, a.dw + r0 * in + c0);
    if (a.db != nullptr && c0 == 0) bias_backward_cols(a.dy, a.db, n, out, r0, r1);
    report_dw_tile(a.dw, a.db, in, out, r0, r1, c0, c1);
  });
  if (a.dx == nullptr) return;
  // dx (n, in) = dy·w, masked and converted for the previous layer while the tile is in cache.
  for_block_tiles(n, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const TileKey key = tile_key(r1 - r0, c1 - c0, out, out, 1, in, 1, in, false, false, true);
    run_tile(key, a.dy16 + r0 * out, a.w16 + c0, nullptr, a.dx + r0 * in + c0);
    if (a.relu_x != nullptr) relu_backward_tile(a.relu_x, a.dx, in, r0, r1, c0, c1);
    if (a.dx16 != nullptr) tile_to_bf16(a.dx, a.dx16, a.dxt16, n, in, r0, r1, c0, c1);
  });
}

}  // namespace tessera::kernels

#else  // !TESSERA_HAVE_ONEDNN: oneDNN was not found or not wanted at configure time.

namespace tessera::kernels {

bool onednn_available() { return false; }

[[noreturn]] static void no_onednn() {
  throw std::logic_error(
      "this tessera build has no oneDNN engine (install libdnnl-dev and configure with "
      "-DTESSERA_GEMM=onednn)");
}

void onednn_dense_forward(const float*, const float*, const float*, float*, int64_t, int64_t,
                          int64_t, bool) {
  no_onednn();
}
void onednn_dense_backward(const float*, const float*, const float*, float*, float*, float*,
                           int64_t, int64_t, int64_t, bool) {
  no_onednn();
}

const char* onednn_bf16_unsupported_reason() {
  return "this build has no oneDNN (it was not found at configure time)";
}

void onednn_dense_forward_bf16(const bf16*, const bf16*, const float*, float*, bf16*, int64_t, int64_t,
                        int64_t, bool) {
  throw std::logic_error(onednn_bf16_unsupported_reason());
}
void onednn_dense_backward_bf16(const DenseBf16Backward&, int64_t, int64_t, int64_t) {
  throw std::logic_error(onednn_bf16_unsupported_reason());
}

}  // namespace tessera::kernels

#endif
