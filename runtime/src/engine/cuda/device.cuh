// Device-side helpers shared by every kernel: loading and storing any etgpu dtype as a compute
// type (float, double or int64), a broadcast-aware offset calculator, and warp/block reductions.
// Dtypes are switched at run time inside the kernel: the branch is uniform across a launch, so it
// costs a few instructions per element instead of one template instance per dtype combination.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "engine/cuda/cuda_common.h"
#include "engine/tensor.h"

namespace etgpu::cuda {

// ---- scalar loads and stores ------------------------------------------------------------------

template <class T>
__device__ __forceinline__ T load_as(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<T>(static_cast<const float*>(p)[i]);
    case DType::F16: return static_cast<T>(__half2float(static_cast<const __half*>(p)[i]));
    case DType::BF16: return static_cast<T>(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
    case DType::I64: return static_cast<T>(static_cast<const int64_t*>(p)[i]);
    case DType::I32: return static_cast<T>(static_cast<const int32_t*>(p)[i]);
    case DType::I16: return static_cast<T>(static_cast<const int16_t*>(p)[i]);
    case DType::I8: return static_cast<T>(static_cast<const int8_t*>(p)[i]);
    case DType::U8: return static_cast<T>(static_cast<const uint8_t*>(p)[i]);
    case DType::Bool: return static_cast<T>(static_cast<const uint8_t*>(p)[i] != 0);
  }
  return T(0);
}

// Float to integer truncates toward zero (as torch casts); NaN or out-of-range values give
// whatever the conversion instruction gives (no trap).
template <class T>
__device__ __forceinline__ void store_from(void* p, DType dtype, int64_t i, T v) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(static_cast<float>(v)); return;
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v)); return;
    case DType::I64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); return;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); return;
    case DType::I16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(static_cast<int64_t>(v)); return;
    case DType::I8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<int64_t>(v)); return;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); return;
    case DType::Bool: static_cast<uint8_t*>(p)[i] = v != T(0); return;
  }
}

// The activations a Glu gates with (GELU erf / tanh, SiLU), shared by the unary and Glu kernels
// and the GEMV's Glu epilogue so they round alike; other ops give NaN.
template <class T>
__device__ __forceinline__ T gate_activation(UnaryOp op, T x) {
  constexpr double kSqrt1_2 = 0.70710678118654752440, kSqrt2OverPi = 0.79788456080286535588;
  switch (op) {
    case UnaryOp::GeluErf: return T(0.5) * x * (T(1) + erf(x * T(kSqrt1_2)));
    case UnaryOp::GeluTanh: return T(0.5) * x * (T(1) + tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
    case UnaryOp::Silu: return x / (T(1) + exp(-x));
    default: return T(NAN);
  }
}

// Rounds an fp32 value to what `dtype` can hold, as storing and reloading it would.
__device__ __forceinline__ float round_to_dtype(float v, DType dtype) {
  if (dtype == DType::BF16) return __bfloat162float(__float2bfloat16(v));
  if (dtype == DType::F16) return __half2float(__float2half(v));
  return v;
}

__device__ __forceinline__ int64_t load_index(const void* p, DType dtype, int64_t i) {
  return dtype == DType::I32 ? static_cast<const int32_t*>(p)[i] : static_cast<const int64_t*>(p)[i];
}

// ---- 16-byte vectors ---------------------------------------------------------------------------

// 16 bytes of T (float, __half, __nv_bfloat16) as floats; p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void load_vec(const T* p, float* f) {
  constexpr int kVec = 16 / sizeof(T);
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int t = 0; t < kVec; ++t) f[t] = static_cast<float>(h[t]);
}

template <class T>
__device__ __forceinline__ void store_vec(T* p, const float* f) {
  constexpr int kVec = 16 / sizeof(T);
  uint4 raw;
  T* h = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int t = 0; t < kVec; ++t) h[t] = static_cast<T>(f[t]);
  *reinterpret_cast<uint4*>(p) = raw;
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// ---- broadcast-aware offsets ------------------------------------------------------------------

// Walks an output of `rank` dims in row-major order; for each operand k, its element offset is
// the sum of index[d] * strides[k][d] (a stride of 0 broadcasts). Passed to kernels by value.
template <int kOperands>
struct Indexer {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kOperands][kMaxRank] = {};
  int64_t base[kOperands] = {};
  bool contiguous[kOperands] = {};  // offset == linear index: skip the divisions

  __device__ __forceinline__ void offsets(int64_t linear, int64_t* out) const {
    bool all = true;
#pragma unroll
    for (int k = 0; k < kOperands; ++k) {
      out[k] = contiguous[k] ? linear : base[k];
      all &= contiguous[k];
    }
    if (all) return;
    int64_t rest = linear;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t idx = rest % shape[d];
      rest /= shape[d];
#pragma unroll
      for (int k = 0; k < kOperands; ++k) {
        if (!contiguous[k]) out[k] += idx * strides[k][d];
      }
    }
  }
};

// ---- reductions ---------------------------------------------------------------------------------

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the result. `scratch` holds 32 values; the trailing barrier lets callers reuse it at once.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  __syncthreads();
  return r;
}

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a > b ? a : b; }
};

// ---- index_copy's placement (KV-cache writes) ---------------------------------------------------

// Element i of a value viewed as [outer, count, inner] lands at row index[j] of a destination
// viewed as [outer, extent, inner] along `dim`. Positions are read on the device, so a captured
// decode step stays correct as they advance; one outside [0, extent) is flagged, not written.
struct CacheRows {
  const void* index;
  DType index_dtype;
  int64_t count, extent, inner;
  int* error_flag;

  // The destination offset of element i, or -1 (the error flag set) when its position is out of range.
  __device__ __forceinline__ int64_t offset(int64_t i) const {
    const int64_t q = i % inner, rest = i / inner;
    const int64_t j = rest % count, o = rest / count;
    const int64_t target = load_index(index, index_dtype, j);
    if (target < 0 || target >= extent) {
      atomicCAS(error_flag, kNoError, kIndexOutOfRange);
      return -1;
    }
    return (o * extent + target) * inner + q;
  }
};

inline CacheRows cache_rows(const TensorRef& dst, int dim, const TensorRef& index, int* error_flag) {
  int64_t inner = 1;
  for (int d = dim + 1; d < dst.rank; ++d) inner *= dst.shape[d];
  return CacheRows{index.data, index.dtype, index.shape[0], dst.shape[dim], inner, error_flag};
}

// ---- launch geometry ----------------------------------------------------------------------------

constexpr int kThreads = 256;

// Grid-stride loops cover any count; the grid is capped so huge tensors need no 64-bit grid.
inline unsigned grid_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// ---- programmatic dependent launch (sm_90) ------------------------------------------------------

// A kernel launched with launch_overlapped may start while the previous kernel in the stream
// drains: it can load what no kernel writes (weights) first, then must wait here for the previous
// grid (completed, its memory visible) before reading activations or writing anything.
__device__ __forceinline__ void wait_previous_grid() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel, if launched with launch_overlapped, start as SMs free up.
__device__ __forceinline__ void release_next_grid() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <class... Params, class... Args>
cudaError_t launch_overlapped(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                              Args&&... args) {
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  const cudaLaunchConfig_t config{grid, block, smem, stream, &overlap, 1};
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace etgpu::cuda

namespace etgpu::cuda {

// ---- host-side indexer construction --------------------------------------------------------------

// Element strides of `x` broadcast (right-aligned) to `out`'s rank: 0 where x has size 1.
inline void broadcast_strides(const TensorRef& x, const TensorRef& out, int64_t* strides) {
  for (int d = 0; d < out.rank; ++d) strides[d] = 0;
  int64_t s = 1;
  for (int i = 1; i <= x.rank; ++i) {
    const int64_t size = x.shape[x.rank - i];
    strides[out.rank - i] = size == 1 ? 0 : s;
    s *= size;
  }
}

inline bool same_shape(const TensorRef& a, const TensorRef& b) {
  if (a.rank != b.rank) return false;
  for (int d = 0; d < a.rank; ++d) {
    if (a.shape[d] != b.shape[d]) return false;
  }
  return true;
}

// An indexer over `out` whose operands broadcast to it.
template <int K>
Indexer<K> broadcast_indexer(const TensorRef& out, const TensorRef* const* operands) {
  Indexer<K> ix;
  ix.rank = out.rank;
  for (int d = 0; d < out.rank; ++d) ix.shape[d] = out.shape[d];
  for (int k = 0; k < K; ++k) {
    broadcast_strides(*operands[k], out, ix.strides[k]);
    ix.contiguous[k] = operands[k]->numel() == out.numel();  // broadcasting only adds size-1 dims
  }
  return ix;
}

}  // namespace etgpu::cuda
