// Skinny products for decode: out[M, N] (+)= a[M, K] @ w[N, K]^T with M <= kGemvMaxRows (the
// linear layers of a decode step, one to a few tokens). The time is streaming w once; cuBLASLt's
// kernels for M = 1 (nvjet "TNN"/"TNT" tiles) took ~10 us on a 2 MB weight, a few times its
// bandwidth floor. Here a warp owns kCols output columns: per step each lane loads one 16-byte
// vector of each of those weight rows (two steps unrolled: 2 * kCols loads in flight) and the
// matching vectors of the M rows of a (small and shared by every warp: cache hits), accumulates
// in fp32, then the warp reduces. With `accumulate` the existing output (a bias already written
// there) is added before the one rounding, as cuBLASLt's beta = 1 does.
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"
#include "engine/cuda/gemv.h"

namespace etgpu::cuda {
namespace {

constexpr int kCols = 2;   // output columns per warp
constexpr int kWarps = 8;  // per block

template <class T, int M>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const T* a, const T* w, T* out, int64_t n, int64_t k,
                                                           bool accumulate) {
  constexpr int kVec = 16 / sizeof(T);
  const int lane = threadIdx.x & 31;
  const int64_t col0 = (int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * kCols;
  if (col0 >= n) return;
  float acc[M][kCols] = {};
  const T* rows[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) rows[c] = w + (col0 + c < n ? col0 + c : col0) * k;  // a missing column repeats col0
  for (int64_t k0 = int64_t(lane) * kVec; k0 < k; k0 += 2 * 32 * kVec) {
    float wv[2][kCols][kVec];
    bool second = k0 + 32 * kVec < k;
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      load_vec(rows[c] + k0, wv[0][c]);
      if (second) load_vec(rows[c] + k0 + 32 * kVec, wv[1][c]);
    }
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      if (s == 1 && !second) break;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float av[kVec];
        load_vec(a + m * k + k0 + s * 32 * kVec, av);
#pragma unroll
        for (int c = 0; c < kCols; ++c)
#pragma unroll
          for (int t = 0; t < kVec; ++t) acc[m][c] += av[t] * wv[s][c][t];
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[m][c] = warp_reduce(acc[m][c], SumOp());
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      if (col0 + c >= n) continue;
      T* o = out + m * n + col0 + c;
      *o = static_cast<T>(acc[m][c] + (accumulate ? static_cast<float>(*o) : 0.f));
    }
}

template <class T>
void launch(const T* a, const T* w, T* out, int64_t m, int64_t n, int64_t k, bool accumulate, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((n + kCols * kWarps - 1) / (kCols * kWarps));
  switch (m) {
    case 1: gemv_kernel<T, 1><<<grid, kWarps * 32, 0, stream>>>(a, w, out, n, k, accumulate); break;
    case 2: gemv_kernel<T, 2><<<grid, kWarps * 32, 0, stream>>>(a, w, out, n, k, accumulate); break;
    case 3: gemv_kernel<T, 3><<<grid, kWarps * 32, 0, stream>>>(a, w, out, n, k, accumulate); break;
    case 4: gemv_kernel<T, 4><<<grid, kWarps * 32, 0, stream>>>(a, w, out, n, k, accumulate); break;
    default: gemv_kernel<T, kGemvMaxRows><<<grid, kWarps * 32, 0, stream>>>(a, w, out, n, k, accumulate); break;
  }
}

}  // namespace

Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, void* out, bool* handled) {
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(g.dtype));
  const bool rows_ok = g.m >= 1 && (g.m <= 4 || g.m == kGemvMaxRows);  // the kernel's instances
  *handled = g.trans_b && g.batch == 1 && rows_ok && g.k % vec == 0 && g.n <= int64_t(INT32_MAX) * kCols &&
             aligned16(a) && aligned16(w) && is_floating(g.dtype);
  if (!*handled) return Status::ok();
  switch (g.dtype) {
    case DType::F32:
      launch(static_cast<const float*>(a), static_cast<const float*>(w), static_cast<float*>(out), g.m, g.n, g.k,
             g.accumulate, c.stream);
      break;
    case DType::F16:
      launch(static_cast<const __half*>(a), static_cast<const __half*>(w), static_cast<__half*>(out), g.m, g.n,
             g.k, g.accumulate, c.stream);
      break;
    default:
      launch(static_cast<const __nv_bfloat16*>(a), static_cast<const __nv_bfloat16*>(w),
             static_cast<__nv_bfloat16*>(out), g.m, g.n, g.k, g.accumulate, c.stream);
      break;
  }
  ETGPU_CUDA_LAUNCH_CHECK("gemv kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
