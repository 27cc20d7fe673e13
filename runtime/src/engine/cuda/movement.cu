// Data movement on the GPU: permute, expand, slice, select, cat and copy_into are all one
// strided copy — iterate over a shape, read the source at one set of strides and write the
// destination at another. Contiguous-to-contiguous copies become a device memcpy.
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

int normalize(int dim, int rank) { return dim < 0 ? dim + rank : dim; }

// Operand 0 is the source, operand 1 the destination; offsets are in elements. I: index_math.h.
template <class E, class I>
__global__ void strided_copy_kernel(Indexer<2, I> ix, const E* src, E* dst, I count) {
  for (I i = grid_first<I>(); i < count; i += grid_stride<I>()) {
    I off[2];
    ix.offsets(i, off);
    dst[off[1]] = src[off[0]];
  }
}

template <class E>
void launch_strided_copy(const Context& c, const OperandWalk<2>& walk, const void* src, void* dst, int64_t count) {
  with_index_type(walk.fits_index32(), [&](auto index) {
    using I = decltype(index);
    strided_copy_kernel<E, I><<<grid_for(count), kThreads, 0, c.stream>>>(
        walk.indexer<I>(), static_cast<const E*>(src), static_cast<E*>(dst), static_cast<I>(count));
  });
}

void contiguous(const TensorRef& t, int64_t* strides) { contiguous_strides(t, strides); }

// Copies over `shape` (rank, dims), element strides and base offsets for both sides.
Status strided_copy(const Context& c, const TensorRef& shape, const int64_t* src_strides, int64_t src_base,
                    const void* src, const int64_t* dst_strides, int64_t dst_base, void* dst, DType dtype) {
  const int64_t count = shape.numel();
  if (count == 0) return Status::ok();
  OperandWalk<2> walk;
  walk.rank = shape.rank;
  bool src_contig = true, dst_contig = true;
  int64_t expect = 1;
  for (int d = shape.rank - 1; d >= 0; --d) {
    walk.shape[d] = shape.shape[d];
    walk.strides[0][d] = src_strides[d];
    walk.strides[1][d] = dst_strides[d];
    // A dim of size 1 never moves the offset, so its stride does not matter.
    if (shape.shape[d] != 1) {
      src_contig &= src_strides[d] == expect;
      dst_contig &= dst_strides[d] == expect;
    }
    expect *= shape.shape[d];
  }
  const size_t element = dtype_size(dtype);
  if (src_contig && dst_contig) {
    ETGPU_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + dst_base * element,
                                     static_cast<const uint8_t*>(src) + src_base * element,
                                     count * element, cudaMemcpyDeviceToDevice, c.stream));
    return Status::ok();
  }
  walk.base[0] = src_base;
  walk.base[1] = dst_base;
  switch (element) {
    case 1: launch_strided_copy<uint8_t>(c, walk, src, dst, count); break;
    case 2: launch_strided_copy<uint16_t>(c, walk, src, dst, count); break;
    case 4: launch_strided_copy<uint32_t>(c, walk, src, dst, count); break;
    case 8: launch_strided_copy<uint64_t>(c, walk, src, dst, count); break;
    default: return err("strided copy: unsupported element size ", element);
  }
  ETGPU_CUDA_LAUNCH_CHECK("strided copy kernel");
  return Status::ok();
}

// out (contiguous) = view of x with `strides` and `base`.
Status gather_view(const Context& c, const TensorRef& x, const int64_t* strides, int64_t base, const TensorRef& out) {
  int64_t out_strides[kMaxRank];
  contiguous(out, out_strides);
  return strided_copy(c, out, strides, base, x.data, out_strides, 0, out.data, out.dtype);
}

}  // namespace

Status broadcast_copy(const Context& c, const TensorRef& x, const TensorRef& out) {
  if (x.dtype != out.dtype) return err("broadcast copy: dtype mismatch");
  int64_t strides[kMaxRank];
  broadcast_strides(x, out, strides);
  return gather_view(c, x, strides, 0, out);
}

Status permute(const Context& c, const Node& n, const PermuteParams& p) {
  const TensorRef& x = n.in[0];
  int64_t in_strides[kMaxRank], strides[kMaxRank];
  contiguous(x, in_strides);
  for (int i = 0; i < x.rank; ++i) strides[i] = in_strides[normalize(p.perm[i], x.rank)];
  return gather_view(c, x, strides, 0, n.out);
}

Status expand(const Context& c, const Node& n, const ExpandParams&) {
  return broadcast_copy(c, n.in[0], n.out);
}

Status slice(const Context& c, const Node& n, const SliceParams& p) {
  const TensorRef& x = n.in[0];
  const int dim = normalize(p.dim, x.rank);
  int64_t strides[kMaxRank];
  contiguous(x, strides);
  const int64_t base = p.start * strides[dim];
  strides[dim] *= p.step;
  return gather_view(c, x, strides, base, n.out);
}

Status select(const Context& c, const Node& n, const SelectParams& p) {
  const TensorRef& x = n.in[0];
  const int dim = normalize(p.dim, x.rank);
  int64_t in_strides[kMaxRank], strides[kMaxRank];
  contiguous(x, in_strides);
  for (int d = 0, o = 0; d < x.rank; ++d) {
    if (d != dim) strides[o++] = in_strides[d];
  }
  return gather_view(c, x, strides, p.index * in_strides[dim], n.out);
}

Status copy_into(const Context& c, const Node& n, const CopyIntoParams& p) {
  const TensorRef &x = n.in[0], &dst = n.out;
  const int dim = normalize(p.dim, dst.rank);
  int64_t src_strides[kMaxRank], dst_strides[kMaxRank];
  contiguous(x, src_strides);
  contiguous(dst, dst_strides);
  return strided_copy(c, x, src_strides, 0, x.data, dst_strides, p.start * dst_strides[dim], dst.data, x.dtype);
}

// Each input is copied into the slab of the output it occupies along `dim`.
Status cat(const Context& c, const Node& n, const CatParams& p) {
  const int dim = normalize(p.dim, n.out.rank);
  int64_t start = 0;
  for (const TensorRef& x : n.in) {
    ETGPU_RETURN_IF_ERROR(copy_into(c, Node{CopyIntoParams{dim, start}, {x}, n.out}, CopyIntoParams{dim, start}));
    start += x.shape[dim];
  }
  return Status::ok();
}

}  // namespace etgpu::cuda
