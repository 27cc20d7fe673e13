// Indexing: index_select (out = x.shape[:dim] + index.shape + x.shape[dim+1:]) and gather
// (torch.gather: out[..., i_dim, ...] = x[..., index[...], ...]). Negative indices wrap once, as
// in PyTorch. An index still out of range cannot fail the launch: the element is written as zero
// and the engine's error flag is set, which the next synchronize reports as an error.
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

template <class E>
__global__ void index_select_kernel(const E* x, const void* index, DType index_dtype, E* out, int64_t count,
                                    int64_t num_index, int64_t size, int64_t post, int* error_flag) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    // out viewed as [pre, num_index, post]; x as [pre, size, post].
    const int64_t q = i % post, rest = i / post;
    const int64_t j = rest % num_index, pre = rest / num_index;
    int64_t idx = load_index(index, index_dtype, j);
    out[i] = resolve_index(&idx, size, error_flag) ? x[(pre * size + idx) * post + q] : E(0);
  }
}

template <class E>
__global__ void gather_kernel(const E* x, const void* index, DType index_dtype, E* out, int64_t count,
                              Indexer<1> ix, int64_t dim_stride, int64_t size, int* error_flag) {
  // ix walks index/out (same shape); its strides are x's with the one at `dim` zeroed, so
  // offsets() gives x's offset of every coordinate but `dim`, which the index supplies.
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    ix.offsets(i, off);
    int64_t idx = load_index(index, index_dtype, i);
    out[i] = resolve_index(&idx, size, error_flag) ? x[off[0] + idx * dim_stride] : E(0);
  }
}

// index_copy in place (KV-cache writes): CacheRows places each element of x.
template <class E>
__global__ void index_copy_kernel(const E* x, E* dst, int64_t total, CacheRows rows) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = rows.offset(i);
    if (at >= 0) dst[at] = x[i];
  }
}

// Launches `launch(E{})` with E the unsigned integer type of x's element size: these kernels
// only move elements, so every dtype of one size shares an instantiation.
template <class Launch>
Status by_element_size(DType dtype, const char* what, Launch&& launch) {
  switch (dtype_size(dtype)) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    case 4: launch(uint32_t{}); break;
    case 8: launch(uint64_t{}); break;
    default: return err(what, ": unsupported dtype");
  }
  ETGPU_CUDA_LAUNCH_CHECK(what);
  return Status::ok();
}

}  // namespace

Status index_copy(const Context& c, const Node& n, const IndexCopyParams& p) {
  const TensorRef &index = n.in[0], &x = n.in[1], &dst = n.out;
  const int64_t total = x.numel();
  if (total == 0) return Status::ok();
  const CacheRows rows = cache_rows(dst, p.dim < 0 ? p.dim + dst.rank : p.dim, index, c.error_flag);
  const unsigned grid = grid_for(total);
  return by_element_size(x.dtype, "index_copy kernel", [&](auto element) {
    using E = decltype(element);
    index_copy_kernel<E><<<grid, kThreads, 0, c.stream>>>(static_cast<const E*>(x.data),
                                                          static_cast<E*>(dst.data), total, rows);
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
  const unsigned grid = grid_for(count);
  return by_element_size(x.dtype, "index_select kernel", [&](auto element) {
    using E = decltype(element);
    index_select_kernel<E><<<grid, kThreads, 0, c.stream>>>(static_cast<const E*>(x.data), index.data,
        index.dtype, static_cast<E*>(out.data), count, num_index, size, post, c.error_flag);
  });
}

Status gather(const Context& c, const Node& n, const GatherParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const int dim = p.dim < 0 ? p.dim + x.rank : p.dim;
  int64_t x_strides[kMaxRank];
  contiguous_strides(x, x_strides);
  Indexer<1> ix;
  ix.rank = index.rank;
  for (int d = 0; d < index.rank; ++d) {
    ix.shape[d] = index.shape[d];
    ix.strides[0][d] = d == dim ? 0 : x_strides[d];
  }
  const unsigned grid = grid_for(count);
  return by_element_size(x.dtype, "gather kernel", [&](auto element) {
    using E = decltype(element);
    gather_kernel<E><<<grid, kThreads, 0, c.stream>>>(static_cast<const E*>(x.data), index.data,
        index.dtype, static_cast<E*>(out.data), count, ix, x_strides[dim], x.shape[dim], c.error_flag);
  });
}

}  // namespace etgpu::cuda
