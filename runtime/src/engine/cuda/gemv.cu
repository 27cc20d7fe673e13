// Skinny products for decode: out[M, N] (+)= a[M, K] @ w[N, K]^T with M <= kGemvMaxRows (the
// linear layers of a decode step, one to a few tokens). The time is streaming w once, so the
// kernel is shaped by how many bytes of w are in flight per multiprocessor:
//  - a block's warps form column groups of kCols output columns, each group splitting K over
//    its warps (gemv_splits: enough splits that even a 512-column matrix gives a few blocks per
//    SM, few enough that each lane has several steps of loads);
//  - each lane issues all of its kUnroll * kCols 16-byte weight loads of a pass before using one;
//  - the first pass's weights are loaded before waiting for the kernel that writes `a`
//    (programmatic dependent launch): that load overlaps the previous kernel's tail;
//  - warps reduce by shuffles, then the K splits of a column meet in shared memory.
// fp32 accumulation; a bias, or with `accumulate` the existing output (a bias matmul.cpp wrote
// there), is added before the one rounding, as cuBLASLt's beta = 1 does. The output columns may be
// split over several tensors (GemvOutputs: a SplitLinear's siblings, one launch for all of them);
// only the epilogue's store address depends on it. With a Glu output the column groups pair gate
// column j with up column N/2 + j instead of adjacent columns (two row pointers set differently,
// the weight as stored), so one group's epilogue has both halves of act(gate) * up.
// With a norm prologue (GemvNorm: a decode step's RMSNorm folded into the product that reads it),
// each block first computes a's rows into shared memory and the product reads them from there.
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"
#include "engine/cuda/gemv.h"

namespace etgpu::cuda {
namespace {

constexpr int kWarps = 8;   // per block
constexpr int kUnroll = 4;  // steps of one lane per pass (all loads of a pass in flight)
constexpr int kCols = 2;    // output columns per column group

struct GemvShape {
  int64_t n, k;
  int splits;  // warps per column group (a power of two dividing kWarps); kWarps / splits groups
  bool accumulate;
  // Column group j holds columns j * group_step + c * column_step, c < kCols: adjacent columns
  // (kCols, 1), or with a Glu output gate column j and up column n/2 + j (1, n/2). `groups` of
  // them (a grid's last block may hold groups past them: they load and store nothing). Steps, not
  // a paired flag, because a select here costs fp32 M = 1 14 registers and a block per SM.
  int64_t group_step, column_step, groups;
};

static_assert(kCols == 2, "a paired column group holds one gate and one up column");

// Output column c of column group `group`.
__device__ __forceinline__ int64_t column(const GemvShape& s, int64_t group, int c) {
  return group * s.group_step + c * s.column_step;
}

template <class T>
__device__ __forceinline__ void load_weights(const T* const (&rows)[kCols], int64_t k0, int64_t step, int64_t k,
                                             uint4 (&wv)[kUnroll][kCols]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
#pragma unroll
    for (int c = 0; c < kCols; ++c)
      if (k0 + u * step < k) wv[u][c] = *reinterpret_cast<const uint4*>(rows[c] + k0 + u * step);
}

// Where output column `col` of row m is stored: in the output whose column range holds it. The
// loop is unrolled over static indices, so the outputs stay in the parameter space (no local copy).
template <class T>
__device__ __forceinline__ T* output_at(const GemvOutputs& o, int m, int64_t col) {
  void* base = o.data[0];
  int64_t begin = 0, width = o.begin[1];
#pragma unroll
  for (int i = 1; i < kMaxSplitOutputs; ++i) {
    if (i < o.count && col >= o.begin[i]) {
      base = o.data[i];
      begin = o.begin[i];
      width = o.begin[i + 1] - o.begin[i];
    }
  }
  return static_cast<T*>(base) + m * width + (col - begin);
}

// Which norm, if any, a GEMV instance computes its a rows with first (gemv_body's kNorm).
enum NormPrologue : int { kNoNorm = 0, kRmsNorm, kAddRmsNorm };

// The norm's weight, staged into shared memory by asynchronous copies issued before the kernel
// waits for its predecessor: its latency then hides behind that kernel's tail, as the first pass's
// weights do, and it costs no registers (those hold the first pass's weights).
template <class T>
__device__ __forceinline__ void stage_norm_weight(const GemvNorm& norm, int k, T* weight_s) {
  constexpr int kVec = 16 / sizeof(T);
  if (!norm.weight) return;
#pragma unroll 1  // asynchronous: unrolling would only add code
  for (int j = threadIdx.x * kVec; j < k; j += kWarps * 32 * kVec) {
    cp_async16(smem_addr(weight_s + j), static_cast<const T*>(norm.weight) + j, true);
  }
  cp_async_commit();
}

// The norm of a's M rows into `rows_s` ([M, k] of T in shared memory), as the norm kernel computes
// them (norm.cu rms_norm_vec_kernel: the same per-vector helpers, so the same roundings; only the
// order in which a row's squares are summed differs). Block 0 also stores the sum and the output
// for the instructions after the product. Every thread of the block takes part (barriers).
template <class T, int M, bool kAdd>
__device__ __forceinline__ void norm_rows(const GemvNorm& norm, int k, T* rows_s, const T* weight_s) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float squares[kWarps][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool writer = blockIdx.x == 0;
  const auto* x = static_cast<const T*>(norm.x);
  const auto* residual = static_cast<const T*>(norm.residual);
  float q[M] = {};
  // First pass: the input rows (x, or x + residual as the separate add rounds it) into shared memory
  // and each row's sum of squares; all of a step's M loads are issued before any is used.
  for (int j = threadIdx.x * kVec; j < k; j += kWarps * 32 * kVec) {
    float v[M][kVec];
#pragma unroll
    for (int m = 0; m < M; ++m) rms_norm_input_vec<T, kAdd>(x + m * k + j, kAdd ? residual + m * k + j : nullptr, v[m]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (kAdd && writer) store_vec(static_cast<T*>(norm.sum) + m * k + j, v[m]);
#pragma unroll
      for (int t = 0; t < kVec; ++t) q[m] += v[m][t] * v[m][t];
      store_vec(rows_s + m * k + j, v[m]);  // exact: the input is already of T
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float total = warp_reduce(q[m], SumOp());
    if (lane == 0) squares[warp][m] = total;
  }
  cp_async_wait<0>();  // the weight vectors this thread copied, which are the ones it reads below
  __syncthreads();
  float rstd[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += squares[w][m];
    rstd[m] = rms_rstd(total, k, norm.eps);
  }
  // Second pass: each thread normalizes the vectors it stored itself, then all the block's rows
  // must be in place before any warp's product reads them.
  for (int j = threadIdx.x * kVec; j < k; j += kWarps * 32 * kVec) {
    float w[kVec] = {};
    if (norm.weight) load_vec(weight_s + j, w);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float v[kVec];
      load_vec(rows_s + m * k + j, v);
      rms_normalize_vec<T>(v, rstd[m], norm.round_normalized, norm.weight != nullptr, w, norm.unit_offset);
      store_vec(rows_s + m * k + j, v);
      if (writer) store_vec(static_cast<T*>(norm.out) + m * k + j, v);
    }
  }
  __syncthreads();
}

// The product; with kNorm, `a` is ignored and the rows come from norm_rows (shared memory).
template <class T, int M, int kNorm>
__device__ __forceinline__ void gemv_body(const T* a, const T* w, const GemvOutputs& out, const GemvShape& s,
                                          const GemvNorm& norm) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float partial[kWarps][M][kCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = warp / s.splits, split = warp % s.splits;
  const int64_t column_group = int64_t(blockIdx.x) * (kWarps / s.splits) + group;
  const T* rows[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int64_t col = column(s, column_group, c);
    rows[c] = w + (col < s.n ? col : 0) * s.k;  // missing columns read row 0
  }
  const int64_t step = int64_t(s.splits) * 32 * kVec;
  int64_t k0 = (int64_t(split) * 32 + lane) * kVec;
  const bool active = column_group < s.groups;
  uint4 wv[kUnroll][kCols];
  if (active) load_weights<T>(rows, k0, step, s.k, wv);
  if constexpr (kNorm != kNoNorm) {
    extern __shared__ uint4 norm_shared[];  // [k] weight, then [M, k] rows, of T
    T* weight_s = reinterpret_cast<T*>(norm_shared);
    const int k = static_cast<int>(s.k);  // at most kGemvNormMaxK
    stage_norm_weight<T>(norm, k, weight_s);
    wait_previous_grid();
    release_next_grid();
    T* rows_s = weight_s + k;
    norm_rows<T, M, kNorm == kAddRmsNorm>(norm, k, rows_s, weight_s);
    a = rows_s;
  } else {
    wait_previous_grid();
    release_next_grid();
  }
  float acc[M][kCols] = {};
  while (active && k0 < s.k) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t ku = k0 + u * step;
      if (ku >= s.k) break;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float av[kVec];
        load_vec(a + m * s.k + ku, av);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          const T* h = reinterpret_cast<const T*>(&wv[u][c]);
#pragma unroll
          for (int t = 0; t < kVec; ++t) acc[m][c] += av[t] * static_cast<float>(h[t]);
        }
      }
    }
    k0 += kUnroll * step;
    if (k0 < s.k) load_weights<T>(rows, k0, step, s.k, wv);
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const float v = warp_reduce(acc[m][c], SumOp());
      if (lane == 0) partial[warp][m][c] = v;
    }
  __syncthreads();
  // Thread t of the block finishes output (group, m, c) = t / (M * kCols), (t / kCols) % M, t % kCols.
  const int t = threadIdx.x, out_group = t / (M * kCols), m = (t / kCols) % M, c = t % kCols;
  const int64_t finished_group = int64_t(blockIdx.x) * (kWarps / s.splits) + out_group;
  const int64_t col = column(s, finished_group, c);
  if (out_group >= kWarps / s.splits || finished_group >= s.groups || col >= s.n) return;
  // Column c's sum over the K splits, plus its bias: the value before the one rounding.
  auto total = [&](int cc, int64_t at) {
    float sum = 0.f;
    for (int sp = 0; sp < s.splits; ++sp) sum += partial[out_group * s.splits + sp][m][cc];
    return sum + (out.bias ? static_cast<float>(static_cast<const T*>(out.bias)[at]) : 0.f);
  };
  const float sum = total(c, col);
  T* o = output_at<T>(out, m, col);
  const T value = static_cast<T>(sum + (s.accumulate ? static_cast<float>(*o) : 0.f));
  *o = value;
  if (out.glu && c == 0) {
    // Glu's rounding: gate and up as stored, act(gate) rounded, then the product.
    const float up = static_cast<float>(static_cast<T>(total(1, column(s, finished_group, 1))));
    const float gate = static_cast<float>(static_cast<T>(gate_activation(out.act, static_cast<float>(value))));
    static_cast<T*>(out.glu)[m * s.groups + finished_group] = static_cast<T>(gate * up);  // [M, n/2]
  }
}

// Two kernels over one body, so that the plain product's instance (signature and code) does not
// change with the norm prologue.
template <class T, int M>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const T* a, const T* w, GemvOutputs out, GemvShape s) {
  gemv_body<T, M, kNoNorm>(a, w, out, s, GemvNorm{});
}

// The prologue's extra registers must not cost a block per SM (bytes of w in flight; qwen3-0.6b's
// q/k/v, 512 blocks, is one wave on 132 SMs at 4 blocks per SM and two at 3): as many blocks as the
// plain bf16 instance of M gets (ptxas, sm_90a: 64, 76, 80, 94 registers for M = 1..4). At 64 registers some M = 1
// instances spill up to 28 bytes of addresses, reloaded once per pass of the loop.
constexpr int norm_min_blocks(int m) { return m == 1 ? 4 : m <= 3 ? 3 : 2; }

template <class T, int M, int kNorm>
__global__ void __launch_bounds__(kWarps * 32, norm_min_blocks(M))
    gemv_norm_kernel(const T* w, GemvOutputs out, GemvShape s, GemvNorm norm) {
  gemv_body<T, M, kNorm>(nullptr, w, out, s, norm);
}

template <class T>
cudaError_t launch_rows(const T* a, const T* w, const GemvOutputs& out, int64_t m, const GemvShape& s, unsigned grid,
                        cudaStream_t stream) {
  const dim3 block(kWarps * 32);
  switch (m) {
    case 1: return launch_overlapped(gemv_kernel<T, 1>, grid, block, 0, stream, a, w, out, s);
    case 2: return launch_overlapped(gemv_kernel<T, 2>, grid, block, 0, stream, a, w, out, s);
    case 3: return launch_overlapped(gemv_kernel<T, 3>, grid, block, 0, stream, a, w, out, s);
    case 4: return launch_overlapped(gemv_kernel<T, 4>, grid, block, 0, stream, a, w, out, s);
    default: return launch_overlapped(gemv_kernel<T, kGemvMaxRows>, grid, block, 0, stream, a, w, out, s);
  }
}

// Shared memory of a norm prologue: the weight's row and the M rows of a.
size_t norm_shared_bytes(int64_t m, int64_t k, DType dtype) { return size_t(m + 1) * size_t(k) * dtype_size(dtype); }

template <class T, int kNorm>
cudaError_t launch_norm_rows(const T* w, const GemvOutputs& out, int64_t m, const GemvShape& s, unsigned grid,
                             const GemvNorm& norm, cudaStream_t stream) {
  const dim3 block(kWarps * 32);
  const size_t smem = norm_shared_bytes(m, s.k, dtype_of<T>());
  switch (m) {
    case 1: return launch_overlapped(gemv_norm_kernel<T, 1, kNorm>, grid, block, smem, stream, w, out, s, norm);
    case 2: return launch_overlapped(gemv_norm_kernel<T, 2, kNorm>, grid, block, smem, stream, w, out, s, norm);
    case 3: return launch_overlapped(gemv_norm_kernel<T, 3, kNorm>, grid, block, smem, stream, w, out, s, norm);
    default: return launch_overlapped(gemv_norm_kernel<T, 4, kNorm>, grid, block, smem, stream, w, out, s, norm);
  }
}

// How many warps split K. Measured (H200, bench/quant_gemv_bench): a lane with kUnroll steps of
// kCols loads in flight streams at ~75% of copy bandwidth, one step per lane at ~55%. So fewer
// splits (more steps per lane, more column groups per block) as long as the grid keeps at least
// two blocks per SM; and never more splits than one step's width fills (no idle warps).
int gemv_splits(int64_t n, int64_t k, int64_t vec, int num_sms) {
  auto blocks = [&](int splits) { return (n + kCols * (kWarps / splits) - 1) / (kCols * (kWarps / splits)); };
  int splits = kWarps;
  while (splits > 1 && (splits * 32 * vec > k ||
                        (splits * 32 * vec * kUnroll > k && blocks(splits / 2) >= 2 * num_sms))) {
    splits /= 2;
  }
  return splits;
}

template <class T>
cudaError_t launch(const Context& c, const T* a, const T* w, const GemvOutputs& out, const GemmProblem& g,
                   const GemvNorm* norm) {
  const bool paired = out.glu != nullptr;
  const GemvShape s{g.n, g.k, gemv_splits(g.n, g.k, 16 / sizeof(T), c.num_sms), g.accumulate,
                    paired ? 1 : kCols, paired ? g.n / 2 : 1, paired ? g.n / 2 : (g.n + kCols - 1) / kCols};
  const int64_t cols_per_block = kCols * (kWarps / s.splits);
  const auto grid = static_cast<unsigned>((g.n + cols_per_block - 1) / cols_per_block);
  if (!norm) return launch_rows(a, w, out, g.m, s, grid, c.stream);
  if (norm->residual) return launch_norm_rows<T, kAddRmsNorm>(w, out, g.m, s, grid, *norm, c.stream);
  return launch_norm_rows<T, kRmsNorm>(w, out, g.m, s, grid, *norm, c.stream);
}

}  // namespace

bool gemv_takes(const GemmProblem& g, const void* a, const void* w, const GemvNorm* norm) {
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(g.dtype));
  const bool rows_ok = g.m >= 1 && (g.m <= 4 || g.m == kGemvMaxRows);  // the kernel's instances
  const bool plain = g.trans_b && g.batch == 1 && rows_ok && g.k % vec == 0 && g.n / 2 < int64_t(UINT32_MAX) &&
                     aligned16(a) && aligned16(w) && is_floating(g.dtype);
  if (!plain || !norm) return plain;
  // The prologue's instances (M <= 4: decode), its shared memory, and 16-byte access to each operand.
  return g.m <= 4 && g.k <= kGemvNormMaxK && norm_shared_bytes(g.m, g.k, g.dtype) <= kGemvNormMaxSharedBytes &&
         norm->out == a && norm->x && aligned16(norm->x) && all_aligned16({norm->residual, norm->sum, norm->weight}) &&
         (norm->residual != nullptr) == (norm->sum != nullptr);
}

Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, const GemvOutputs& out,
            bool* handled, const GemvNorm* norm) {
  *handled = gemv_takes(g, a, w, norm);
  if (!*handled) return Status::ok();
  cudaError_t error;
  switch (g.dtype) {
    case DType::F32:
      error = launch(c, static_cast<const float*>(a), static_cast<const float*>(w), out, g, norm);
      break;
    case DType::F16:
      error = launch(c, static_cast<const __half*>(a), static_cast<const __half*>(w), out, g, norm);
      break;
    default:
      error = launch(c, static_cast<const __nv_bfloat16*>(a), static_cast<const __nv_bfloat16*>(w), out, g, norm);
      break;
  }
  return cuda_status(error, norm ? "gemv kernel with a norm prologue" : "gemv kernel");
}

}  // namespace etgpu::cuda
