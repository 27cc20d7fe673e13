// Indexing: index_select (out = x.shape[:dim] + index.shape + x.shape[dim+1:]) and gather
// (torch.gather: out[..., i_dim, ...] = x[..., index[...], ...]). Negative indices wrap once, as
// in PyTorch. An index still out of range cannot fail the launch: the element is written as zero
// and the engine's error flag is set, which the next synchronize reports as an error.
// Kernels take an index type I (index_math.h): uint32_t when the tensors have fewer than 2^31
// elements. index_select and index_copy only move whole rows, so they move them in units of up
// to 16 bytes (move_unit) rather than element by element.
#include <initializer_list>

#include "engine/cuda/cache_copy.cuh"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

// Wraps a negative index; returns false (and flags the error) when still out of [0, size).
__device__ __forceinline__ bool resolve_index(int64_t* idx, int64_t size, int* error_flag) {
  if (*idx < 0) *idx += size;
  if (*idx >= 0 && *idx < size) return true;
  atomicCAS(error_flag, kNoError, kIndexOutOfRange);
  return false;
}

// out viewed as [pre, num_index, post], x as [pre, size, post] (post in units E).
template <class E, class I>
__global__ void index_select_kernel(const E* x, const void* index, DType index_dtype, E* out, I count,
                                    DivMod<I> num_index, I size, DivMod<I> post, int* error_flag) {
  for (I i = grid_first<I>(); i < count; i += grid_stride<I>()) {
    I q, j;
    const I pre = num_index.divmod(post.divmod(i, q), j);
    int64_t idx = load_index(index, index_dtype, j);
    out[i] = resolve_index(&idx, size, error_flag) ? x[(pre * size + static_cast<I>(idx)) * post.d + q] : E{};
  }
}

template <class E, class I>
__global__ void gather_kernel(const E* x, const void* index, DType index_dtype, E* out, I count,
                              Indexer<1, I> ix, I dim_stride, I size, int* error_flag) {
  // ix walks index/out (same shape); its strides are x's with the one at `dim` zeroed, so
  // offsets() gives x's offset of every coordinate but `dim`, which the index supplies.
  for (I i = grid_first<I>(); i < count; i += grid_stride<I>()) {
    I off[1];
    ix.offsets(i, off);
    int64_t idx = load_index(index, index_dtype, i);
    out[i] = resolve_index(&idx, size, error_flag) ? x[off[0] + static_cast<I>(idx) * dim_stride] : E{};
  }
}

template <class E, class I>
__global__ void index_copy_kernel(IndexCopyArgs<E, I> a) {
  begin_dependent_grid();
  index_copy_units(a, grid_first<I>(), grid_stride<I>());
}

// The widest unit, up to 16 bytes, that a row of `row_elements` elements and every pointer are
// aligned to: one access and one thread per unit instead of per element.
size_t move_unit(size_t element, int64_t row_elements, std::initializer_list<const void*> pointers) {
  size_t unit = 16;
  for (; unit > element; unit /= 2) {
    bool fits = (static_cast<size_t>(row_elements) * element) % unit == 0;
    for (const void* p : pointers) fits &= reinterpret_cast<uintptr_t>(p) % unit == 0;
    if (fits) break;
  }
  return unit;
}

// Launches `launch(E{})` with E an unsigned type of `bytes` bytes (uint4 for 16): these kernels
// only move data, so every dtype of one size shares an instantiation.
template <class Launch>
Status by_size(size_t bytes, const char* what, Launch&& launch) {
  switch (bytes) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    case 4: launch(uint32_t{}); break;
    case 8: launch(uint64_t{}); break;
    case 16: launch(uint4{}); break;
    default: return err(what, ": unsupported dtype");
  }
  ETGPU_CUDA_LAUNCH_CHECK(what);
  return Status::ok();
}

}  // namespace

IndexCopyPlan plan_index_copy(const Node& n, const IndexCopyParams& p) {
  const TensorRef &x = n.in[1], &dst = n.out;
  IndexCopyPlan plan;
  plan.dim = p.dim < 0 ? p.dim + dst.rank : p.dim;
  int64_t inner = 1;
  for (int d = plan.dim + 1; d < dst.rank; ++d) inner *= dst.shape[d];
  const size_t element = dtype_size(x.dtype);
  plan.unit = move_unit(element, inner, {x.data, dst.data});
  plan.per_unit = static_cast<int64_t>(plan.unit / element);
  plan.units = x.numel() / plan.per_unit;
  plan.narrow = fits_index32(x.numel()) && fits_index32(dst.numel());
  return plan;
}

Status index_copy(const Context& c, const Node& n, const IndexCopyParams& p) {
  const IndexCopyPlan plan = plan_index_copy(n, p);
  if (plan.units == 0) return Status::ok();
  return by_size(plan.unit, "index_copy kernel", [&](auto u) {
    using E = decltype(u);
    with_index_type(plan.narrow, [&](auto i) {
      using I = decltype(i);
      launch_overlapped(index_copy_kernel<E, I>, grid_for(plan.units), kThreads, 0, c.stream,
                        index_copy_args<E, I>(c, n, p, plan));
    });
  });
}

Status index_select(const Context& c, const Node& n, const IndexSelectParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const int dim = p.dim < 0 ? p.dim + x.rank : p.dim;
  int64_t post = 1;
  for (int d = dim + 1; d < x.rank; ++d) post *= x.shape[d];
  const int64_t num_index = index.numel(), size = x.shape[dim];
  const size_t element = dtype_size(x.dtype), unit = move_unit(element, post, {x.data, out.data});
  const int64_t per_unit = static_cast<int64_t>(unit / element), units = count / per_unit;
  const bool narrow = fits_index32(count) && fits_index32(x.numel());
  return by_size(unit, "index_select kernel", [&](auto u) {
    using E = decltype(u);
    with_index_type(narrow, [&](auto i) {
      using I = decltype(i);
      index_select_kernel<E, I><<<grid_for(units), kThreads, 0, c.stream>>>(
          static_cast<const E*>(x.data), index.data, index.dtype, static_cast<E*>(out.data), static_cast<I>(units),
          DivMod<I>(num_index), static_cast<I>(size), DivMod<I>(post / per_unit), c.error_flag);
    });
  });
}

Status gather(const Context& c, const Node& n, const GatherParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const int dim = p.dim < 0 ? p.dim + x.rank : p.dim;
  int64_t x_strides[kMaxRank];
  contiguous_strides(x, x_strides);
  OperandWalk<1> walk;
  walk.rank = index.rank;
  for (int d = 0; d < index.rank; ++d) {
    walk.shape[d] = index.shape[d];
    walk.strides[0][d] = d == dim ? 0 : x_strides[d];
  }
  const bool narrow = fits_index32(count) && fits_index32(x.numel());
  return by_size(dtype_size(x.dtype), "gather kernel", [&](auto element) {
    using E = decltype(element);
    if constexpr (sizeof(E) <= 8) {  // element by element: no 16-byte dtype
      with_index_type(narrow, [&](auto i) {
        using I = decltype(i);
        gather_kernel<E, I><<<grid_for(count), kThreads, 0, c.stream>>>(
            static_cast<const E*>(x.data), index.data, index.dtype, static_cast<E*>(out.data),
            static_cast<I>(count), walk.indexer<I>(), static_cast<I>(x_strides[dim]),
            static_cast<I>(x.shape[dim]), c.error_flag);
      });
    }
  });
}

}  // namespace etgpu::cuda
