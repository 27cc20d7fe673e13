// index_copy in place: the KV-cache write. Views dst as [outer, size(dim), inner] and x as
// [outer, n, inner]; slab i of x lands at slab index[i] of dst. A seq-major x ([B, L, H, D] into
// dst [B, H, S, D] along dim 2) holds slab (o, i) at its row seq_major_row(o * n + i).
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {

Status index_copy(const Node& n, const IndexCopyParams& p) {
  const TensorRef &index = n.in[0], &x = n.in[1], &dst = n.out;
  const int dim = p.dim < 0 ? p.dim + dst.rank : p.dim;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= dst.shape[d];
  for (int d = dim + 1; d < dst.rank; ++d) inner *= dst.shape[d];
  const int64_t count = index.shape[0], extent = dst.shape[dim];
  const size_t slab = static_cast<size_t>(inner) * dtype_size(dst.dtype);
  ETGPU_RETURN_IF_ERROR(check_positions(index, extent));
  auto* out = static_cast<uint8_t*>(dst.data);
  const auto* src = static_cast<const uint8_t*>(x.data);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t target = load_int(index.data, index.dtype, i);
      const int64_t row = p.x_seq_major ? seq_major_row(o * count + i, dst.shape[1], count) : o * count + i;
      std::memcpy(out + (o * extent + target) * slab, src + row * slab, slab);
    }
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
