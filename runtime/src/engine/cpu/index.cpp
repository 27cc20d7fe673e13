// Indexed reads: index_select (also embedding lookups) and gather. Index values come from
// runtime data, which the validator cannot see, so every one is range-checked here before any
// byte is read: a bad index is an error naming it, never an out-of-bounds read.
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

int normalize(int dim, int rank) { return dim < 0 ? dim + rank : dim; }

// Index `raw` into a dim of `size`, negative values counting from the end (as torch does).
// Returns -1 when it is out of range.
int64_t wrap_index(int64_t raw, int64_t size) {
  const int64_t wrapped = raw < 0 ? raw + size : raw;
  return (wrapped >= 0 && wrapped < size) ? wrapped : -1;
}

Status index_error(const char* op, int64_t position, int64_t raw, int64_t size) {
  return err(op, ": index ", raw, " at position ", position, " is out of range for a dim of size ", size);
}

int64_t product(const TensorRef& t, int begin, int end) {
  int64_t n = 1;
  for (int d = begin; d < end; ++d) n *= t.shape[d];
  return n;
}

}  // namespace

// out = x.shape[:dim] + index.shape + x.shape[dim+1:]: for every outer position and every index,
// one contiguous run of `inner` elements is copied.
Status index_select(const Node& n, const IndexSelectParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1];
  const int dim = normalize(p.dim, x.rank);
  const int64_t size = x.shape[dim];
  const int64_t count = index.numel();
  // Resolve all indices first so a bad one leaves the output untouched.
  std::vector<int64_t> rows(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t raw = load_int(index.data, index.dtype, i);
    rows[i] = wrap_index(raw, size);
    if (rows[i] < 0) return index_error("index_select", i, raw, size);
  }
  const int64_t outer = product(x, 0, dim), inner = product(x, dim + 1, x.rank);
  const size_t run = static_cast<size_t>(inner) * dtype_size(x.dtype);
  const auto* src = static_cast<const uint8_t*>(x.data);
  auto* dst = static_cast<uint8_t*>(n.out.data);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < count; ++i, dst += run) {
      std::memcpy(dst, src + static_cast<size_t>((o * size + rows[i]) * inner) * dtype_size(x.dtype), run);
    }
  }
  return Status::ok();
}

// torch.gather: out[i_0, ..., i_dim, ...] = x[i_0, ..., index[i_0, ..., i_dim, ...], ...], where
// index (and out) may be smaller than x in every dim but `dim`.
Status gather(const Node& n, const GatherParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1], &out = n.out;
  const int dim = normalize(p.dim, x.rank);
  std::vector<int64_t> x_strides(x.rank);
  contiguous_strides(x, x_strides.data());
  const int64_t dim_stride = x_strides[dim];
  // Walking `out` with x's strides, dim zeroed, gives the start of the line the index picks from.
  std::vector<int64_t> line_strides = x_strides;
  line_strides[dim] = 0;
  const int64_t count = out.numel();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t raw = load_int(index.data, index.dtype, i);
    if (wrap_index(raw, x.shape[dim]) < 0) return index_error("gather", i, raw, x.shape[dim]);
  }
  const size_t element = dtype_size(x.dtype);
  const auto* src = static_cast<const uint8_t*>(x.data);
  auto* dst = static_cast<uint8_t*>(out.data);
  StridedWalk walk(out, {line_strides});
  for (int64_t i = 0; i < count; ++i, walk.next()) {
    const int64_t row = wrap_index(load_int(index.data, index.dtype, i), x.shape[dim]);
    std::memcpy(dst + i * element, src + (walk.offset(0) + row * dim_stride) * element, element);
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
