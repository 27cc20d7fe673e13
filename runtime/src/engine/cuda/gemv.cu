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

template <class T, int M>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const T* a, const T* w, GemvOutputs out, GemvShape s) {
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
  wait_previous_grid();
  release_next_grid();
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
cudaError_t launch(const Context& c, const T* a, const T* w, const GemvOutputs& out, const GemmProblem& g) {
  const bool paired = out.glu != nullptr;
  const GemvShape s{g.n, g.k, gemv_splits(g.n, g.k, 16 / sizeof(T), c.num_sms), g.accumulate,
                    paired ? 1 : kCols, paired ? g.n / 2 : 1, paired ? g.n / 2 : (g.n + kCols - 1) / kCols};
  const int64_t cols_per_block = kCols * (kWarps / s.splits);
  const auto grid = static_cast<unsigned>((g.n + cols_per_block - 1) / cols_per_block);
  return launch_rows(a, w, out, g.m, s, grid, c.stream);
}

}  // namespace

Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, const GemvOutputs& out,
            bool* handled) {
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(g.dtype));
  const bool rows_ok = g.m >= 1 && (g.m <= 4 || g.m == kGemvMaxRows);  // the kernel's instances
  *handled = g.trans_b && g.batch == 1 && rows_ok && g.k % vec == 0 && g.n / 2 < int64_t(UINT32_MAX) &&
             aligned16(a) && aligned16(w) && is_floating(g.dtype);
  if (!*handled) return Status::ok();
  cudaError_t error;
  switch (g.dtype) {
    case DType::F32:
      error = launch(c, static_cast<const float*>(a), static_cast<const float*>(w), out, g);
      break;
    case DType::F16:
      error = launch(c, static_cast<const __half*>(a), static_cast<const __half*>(w), out, g);
      break;
    default:
      error = launch(c, static_cast<const __nv_bfloat16*>(a), static_cast<const __nv_bfloat16*>(w), out, g);
      break;
  }
  return cuda_status(error, "gemv kernel");
}

}  // namespace etgpu::cuda
