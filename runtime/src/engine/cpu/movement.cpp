// Data movement: every op here is a strided view of its input copied into a contiguous output.
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

int normalize(int dim, int rank) { return dim < 0 ? dim + rank : dim; }

std::vector<int64_t> strides_of(const TensorRef& t) {
  std::vector<int64_t> s(t.rank);
  contiguous_strides(t, s.data());
  return s;
}

}  // namespace

Status permute(const Node& n, const PermuteParams& p) {
  const TensorRef& x = n.in[0];
  const std::vector<int64_t> in_strides = strides_of(x);
  std::vector<int64_t> strides(x.rank);
  for (int i = 0; i < x.rank; ++i) strides[i] = in_strides[normalize(p.perm[i], x.rank)];
  strided_copy(x, strides, 0, n.out);
  return Status::ok();
}

Status expand(const Node& n, const ExpandParams&) {
  strided_copy(n.in[0], broadcast_strides(n.in[0], n.out), 0, n.out);
  return Status::ok();
}

Status slice(const Node& n, const SliceParams& p) {
  const TensorRef& x = n.in[0];
  const int dim = normalize(p.dim, x.rank);
  std::vector<int64_t> strides = strides_of(x);
  const int64_t offset = p.start * strides[dim];
  strides[dim] *= p.step;
  strided_copy(x, strides, offset, n.out);
  return Status::ok();
}

Status select(const Node& n, const SelectParams& p) {
  const TensorRef& x = n.in[0];
  const int dim = normalize(p.dim, x.rank);
  std::vector<int64_t> strides = strides_of(x);
  const int64_t offset = p.index * strides[dim];
  strides.erase(strides.begin() + dim);
  strided_copy(x, strides, offset, n.out);
  return Status::ok();
}

// Each input is copied into the slab of the output it occupies along `dim`.
Status cat(const Node& n, const CatParams& p) {
  const int dim = normalize(p.dim, n.out.rank);
  int64_t start = 0;
  for (const TensorRef& x : n.in) {
    Node piece{CopyIntoParams{dim, start}, {x}, n.out};
    ETGPU_RETURN_IF_ERROR(copy_into(piece, std::get<CopyIntoParams>(piece.params)));
    start += x.shape[dim];
  }
  return Status::ok();
}

Status copy_into(const Node& n, const CopyIntoParams& p) {
  const TensorRef &x = n.in[0], &dst = n.out;
  const int dim = normalize(p.dim, dst.rank);
  const std::vector<int64_t> dst_strides = strides_of(dst);
  const size_t element = dtype_size(x.dtype);
  StridedWalk walk(x, {dst_strides}, {p.start * dst_strides[dim]});
  const int64_t count = x.numel();
  auto* out = static_cast<uint8_t*>(dst.data);
  const auto* src = static_cast<const uint8_t*>(x.data);
  for (int64_t i = 0; i < count; ++i, walk.next()) {
    std::memcpy(out + walk.offset(0) * element, src + i * element, element);
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
