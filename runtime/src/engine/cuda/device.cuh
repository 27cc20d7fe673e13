// Device-side helpers shared by every kernel: loading and storing any etgpu dtype as a compute
// type (float, double or int64), broadcast-aware offsets (index_math.h), warp/block reductions.
// Dtypes are mostly switched at run time inside the kernel: the branch is uniform across a
// launch, so it costs a few instructions per element instead of one template instance per dtype
// combination. Hot single-dtype cases name the storage type at compile time instead (load_elem).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/index_math.h"
#include "engine/tensor.h"

namespace etgpu::cuda {

// ---- scalar loads and stores ------------------------------------------------------------------

// The index type I is int64_t or, on the 32-bit path, uint32_t (one instruction less per address).
template <class T, class I>
__device__ __forceinline__ T load_as(const void* p, DType dtype, I i) {
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
template <class T, class I>
__device__ __forceinline__ void store_from(void* p, DType dtype, I i, T v) {
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

// RMSNorm's element math once its row's rstd is known, shared by RmsNorm, AddRmsNorm and a
// Rope's norm so that they round alike: v * rstd, rounded to x's dtype with round_normalized
// (Llama's order), then times the weight w (1 + w with unit_offset, Gemma) when has_weight.
__device__ __forceinline__ float rms_normalize(float v, float rstd, DType x_dtype, bool round_normalized,
                                               bool has_weight, float w, bool unit_offset) {
  v *= rstd;
  if (round_normalized) v = round_to_dtype(v, x_dtype);
  return has_weight ? v * (unit_offset ? 1.f + w : w) : v;
}

// RMSNorm's row statistic from the row's fp32 sum of squares: 1 / sqrt(mean square + eps). One
// formula for the norm kernels and the Rope's fused q/k norm, so that they compute the same value.
__device__ __forceinline__ float rms_rstd(float sum_squares, int64_t n, float eps) {
  return rsqrtf(sum_squares / static_cast<float>(n) + eps);
}

template <class I>
__device__ __forceinline__ int64_t load_index(const void* p, DType dtype, I i) {
  return dtype == DType::I32 ? static_cast<const int32_t*>(p)[i] : static_cast<const int64_t*>(p)[i];
}

// ---- storage type known at compile time ------------------------------------------------------------

// The conversions load_as / store_from use for F32, F16 and BF16.
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class E>
__device__ __forceinline__ E from_float(float v) {
  if constexpr (std::is_same_v<E, __half>) return __float2half_rn(v);
  else if constexpr (std::is_same_v<E, __nv_bfloat16>) return __float2bfloat16_rn(v);
  else return v;
}
// The DType of a storage type (float, __half, __nv_bfloat16), as a constant: a dtype switch given
// it (round_to_dtype) folds away.
template <class E>
__host__ __device__ constexpr DType dtype_of() {
  if constexpr (std::is_same_v<E, __half>) return DType::F16;
  else if constexpr (std::is_same_v<E, __nv_bfloat16>) return DType::BF16;
  else return DType::F32;
}
// round_to_dtype for a storage type known at compile time.
template <class E>
__device__ __forceinline__ float round_to(float v) { return to_float(from_float<E>(v)); }

// Storage type tag: the dtype is only known at run time (load_as / store_from switch on it).
struct AnyDType {};

// Element i of p as T, E being p's storage type (float, __half, __nv_bfloat16: no switch) or
// AnyDType (`dtype` says). Both paths convert and round identically.
template <class E, class T, class I>
__device__ __forceinline__ T load_elem(const void* p, DType dtype, I i) {
  if constexpr (std::is_same_v<E, AnyDType>) return load_as<T>(p, dtype, i);
  else return static_cast<T>(to_float(static_cast<const E*>(p)[i]));
}

template <class E, class T, class I>
__device__ __forceinline__ void store_elem(void* p, DType dtype, I i, T v) {
  if constexpr (std::is_same_v<E, AnyDType>) store_from<T>(p, dtype, i, v);
  else static_cast<E*>(p)[i] = from_float<E>(static_cast<float>(v));
}

// Calls f(E{}) with E the storage type of a float dtype, or AnyDType for the others.
template <class F>
void with_storage_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: f(float{}); break;
    case DType::F16: f(__half{}); break;
    case DType::BF16: f(__nv_bfloat16{}); break;
    default: f(AnyDType{}); break;
  }
}

// Calls f(E{}) for the storage type of a float dtype (for ops whose dtypes are validated float).
template <class F>
void with_float_storage(DType dtype, F&& f) {
  with_storage_type(dtype, [&](auto e) {
    if constexpr (!std::is_same_v<decltype(e), AnyDType>) f(e);
  });
}

// ---- 16-byte vectors ---------------------------------------------------------------------------

// 16 bytes already loaded, holding T (float, __half, __nv_bfloat16), as floats.
template <class T>
__device__ __forceinline__ void unpack_vec(const uint4& raw, float* f) {
  const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int t = 0; t < 16 / int(sizeof(T)); ++t) f[t] = static_cast<float>(h[t]);
}

// 16 bytes of T as floats; p must be 16-byte aligned. The copy into `raw` is what makes this one
// 16-byte load: unpack_vec given *p itself (a reference to global memory) reads each element with
// a load of its own (sixteen 2-byte loads for bf16).
template <class T>
__device__ __forceinline__ void load_vec(const T* p, float* f) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  unpack_vec<T>(raw, f);
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

// Null pointers (absent operands) count as aligned.
inline bool all_aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) {
    if (p && !aligned16(p)) return false;
  }
  return true;
}

// N consecutive elements of E (float, __half, __nv_bfloat16) as floats: one 16-byte access when
// N * sizeof(E) == 16 (p then 16-byte aligned), else N scalar ones.
template <int N, class E>
__device__ __forceinline__ void load_n(const E* p, float* f) {
  if constexpr (N * sizeof(E) == 16) {
    load_vec(p, f);
  } else {
#pragma unroll
    for (int t = 0; t < N; ++t) f[t] = to_float(p[t]);
  }
}

template <int N, class E>
__device__ __forceinline__ void store_n(E* p, const float* f) {
  if constexpr (N * sizeof(E) == 16) {
    store_vec(p, f);
  } else {
#pragma unroll
    for (int t = 0; t < N; ++t) p[t] = from_float<E>(f[t]);
  }
}

// ---- reductions ---------------------------------------------------------------------------------

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces over a group of `group` lanes (a power of two up to 32) starting at a lane that is a
// multiple of `group`; every lane of the group gets the result. Only the group's lanes need to
// take part, so neighbouring groups of one warp may be elsewhere in the kernel.
template <class T, class Op>
__device__ __forceinline__ T lane_group_reduce(T v, Op op, unsigned group) {
  const unsigned first = (threadIdx.x & 31u) & ~(group - 1);
  const unsigned mask = group == 32 ? 0xffffffffu : ((1u << group) - 1) << first;
  // Unrolled over every width a group can have (the steps it lacks skipped: `group` is the same
  // for the whole launch), so no loop counter or branch back sits between the shuffles.
#pragma unroll
  for (unsigned offset = 16; offset > 0; offset >>= 1) {
    if (offset < group) v = op(v, __shfl_xor_sync(mask, v, offset));
  }
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
// I: the index type (uint32_t when the value and the destination have fewer than 2^31 elements).
// Two steps: slot() loads the position, place() checks it (a branch). Kernels load their data
// between the two, so that the position's load and the data's are in flight together.
template <class I>
struct CacheRows {
  const void* index;
  DType index_dtype;
  DivMod<I> count, inner;
  I extent;
  int* error_flag;

  struct Slot {
    I row_offset;     // the destination offset of element i in row 0 of its [extent, inner] slab
    int64_t position;  // the row, not yet checked
  };

  __device__ __forceinline__ Slot slot(I i) const {
    I q, j;
    const I o = count.divmod(inner.divmod(i, q), j);
    return Slot{o * extent * inner.d + q, load_index(index, index_dtype, j)};
  }

  // Sets `at` to the slot's destination offset and returns true, or returns false (the error
  // flag set) when its position is out of range.
  __device__ __forceinline__ bool place(const Slot& s, I& at) const {
    if (s.position < 0 || s.position >= static_cast<int64_t>(extent)) {
      atomicCAS(error_flag, kNoError, kIndexOutOfRange);
      return false;
    }
    at = s.row_offset + static_cast<I>(s.position) * inner.d;
    return true;
  }
};

// `unit` > 1 views each row of `inner` elements as inner / unit wider elements (the caller checks
// that it divides).
template <class I>
CacheRows<I> cache_rows(const TensorRef& dst, int dim, const TensorRef& index, int* error_flag, int64_t unit = 1) {
  int64_t inner = 1;
  for (int d = dim + 1; d < dst.rank; ++d) inner *= dst.shape[d];
  return CacheRows<I>{index.data, index.dtype, DivMod<I>(index.shape[0]), DivMod<I>(inner / unit),
                      static_cast<I>(dst.shape[dim]), error_flag};
}

// ---- launch geometry ----------------------------------------------------------------------------

constexpr int kThreads = 256;

// Grid-stride loops cover any count; the grid is capped so huge tensors need no 64-bit grid.
// (The cap also keeps the stride below 2^28, so a 32-bit loop index below 2^31 cannot wrap.)
inline unsigned grid_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

// First index and stride of a grid-stride loop in index type I.
template <class I>
__device__ __forceinline__ I grid_first() { return static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; }
template <class I>
__device__ __forceinline__ I grid_stride() { return static_cast<I>(gridDim.x) * blockDim.x; }

// ---- asynchronous copies into shared memory (sm_80) ----------------------------------------------

// A shared-memory pointer as the 32-bit address the shared-memory instructions take.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Copies kBytes (16, or 8) from global src to shared dst without passing through registers; when
// !valid the destination is zero-filled instead (src must still be a valid address). 16-byte
// copies bypass L1 (.cg), 8-byte ones may not (.ca: the only form for that size).
template <int kBytes>
__device__ __forceinline__ void cp_async(uint32_t dst, const void* src, bool valid) {
  static_assert(kBytes == 16 || kBytes == 8, "cp.async copies 16 or 8 bytes here");
  const int src_bytes = valid ? kBytes : 0;
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
  }
}

// Closes the thread's current group of cp_async copies.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most kPending of the thread's committed groups are still in flight. The memory
// clobber keeps the compiler from moving shared-memory reads above the wait.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
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

// The start of a kernel that reads nothing before its predecessor is done (no weights to load
// early): launched with launch_overlapped it is scheduled while the previous kernel drains, so
// the launch's latency hides behind that kernel's tail, then it lets its own successor do the same.
// Every kernel launched with launch_overlapped must wait before it completes: a successor's wait
// covers only its direct predecessor, so the chain of waits is what orders the whole stream.
__device__ __forceinline__ void begin_dependent_grid() {
  wait_previous_grid();
  release_next_grid();
}

// Raises kKernel's dynamic shared-memory limit to `bytes`, once per kernel (later calls return
// the first call's result). A failure is returned and cleared from the runtime's last error, so
// that the next launch check (of any kernel) does not report it as its own.
template <auto kKernel>
cudaError_t allow_dynamic_smem(size_t bytes) {
  static const cudaError_t result = [bytes] {
    const cudaError_t e = cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(bytes));
    if (e != cudaSuccess) cudaGetLastError();
    return e;
  }();
  return result;
}

template <class... Params, class... Args>
cudaError_t launch_overlapped(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                              Args&&... args) {
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  const cudaLaunchConfig_t config{grid, block, smem, stream, &overlap, overlap_enabled() ? 1u : 0u};
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace etgpu::cuda
