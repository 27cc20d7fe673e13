// Merging split-KV partials, shared by the standalone merge kernel (attention.cu) and the decode
// kernel's last block (attention_decode.cu), which merges in place of a second launch.
#pragma once

#include <cuda_runtime.h>

#include "engine/cuda/device.cuh"

namespace etgpu::cuda {

// Most split weights merge_rows keeps in shared memory (rows x splits).
constexpr int kMaxMergeWeights = 512;

// A partial row is [Ev + 2] floats: the unnormalised output, then the split's running max
// (natural-log domain; -inf when the split saw no key) and its sum of exponentials.
// Block-wide: merges the `splits` partials of output rows first_row .. first_row + rows - 1 into
// `out` (rows of ev, `dtype`; row r stored at out_rows.row(r), see sdpa_out_rows). A row no split
// saw gives zeros, as PyTorch's safe softmax does.
// rows * splits <= kMaxMergeWeights. Partials are read through L2 (ld.cg): other blocks wrote them
// during this kernel, and a stale L1 line must not be used.
template <class I>
__device__ __forceinline__ void merge_rows(const float* partial, void* out, DType dtype, const SeqMajorRows<I>& out_rows,
                                           int64_t first_row, int rows, int splits, int64_t ev) {
  __shared__ float weights[kMaxMergeWeights];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  // 1. Per row: a split's weight is exp(max_s - max) / sum, so the output is a weighted sum.
  for (int r = warp; r < rows; r += warps) {
    const float* part = partial + (first_row + r) * splits * (ev + 2);
    float m = -INFINITY;
    for (int s = lane; s < splits; s += 32) m = fmaxf(m, __ldcg(part + s * (ev + 2) + ev));
    m = warp_reduce(m, MaxOp());
    float l = 0.f;
    for (int s = lane; s < splits; s += 32) {
      const float ms = __ldcg(part + s * (ev + 2) + ev);
      const float w = ms == -INFINITY ? 0.f : expf(ms - m);
      weights[r * splits + s] = w;
      l += w * __ldcg(part + s * (ev + 2) + ev + 1);
    }
    l = warp_reduce(l, SumOp());
    const float inv = l > 0.f ? 1.f / l : 0.f;
    __syncwarp();
    for (int s = lane; s < splits; s += 32) weights[r * splits + s] *= inv;
  }
  __syncthreads();
  // 2. Every output element: the weighted sum over splits.
  for (int64_t x = threadIdx.x; x < rows * ev; x += blockDim.x) {
    const int r = static_cast<int>(x / ev);
    const int64_t d = x - r * ev;
    const float* part = partial + (first_row + r) * splits * (ev + 2) + d;
    float o = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float w = weights[r * splits + s];
      if (w != 0.f) o += w * __ldcg(part + s * (ev + 2));
    }
    store_from<float>(out, dtype, int64_t(out_rows.row(static_cast<I>(first_row + r))) * ev + d, o);
  }
}

}  // namespace etgpu::cuda
