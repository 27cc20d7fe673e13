// Rope (half-split rotary, schema/etgpu.fbs): optionally of x's [B, L, H, D] layout, optionally
// of x's RMS-normalized rows, optionally storing its rotated rows into a KV cache as IndexCopy
// would. Each intermediate is rounded to the tensors' dtype, as the unfused ops round (the CPU
// reference: cpu/elementwise.cpp).
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

// Rope walks its rotated value `rows` ([..., D], contiguous) in items of N consecutive elements of
// a row's first half, each computed with the N of the second half it pairs with: the index
// arithmetic is done once per 2N elements, and N is 16 bytes of E where the layout allows.
template <class E, class I>
struct RopeArgs {
  Indexer<2, I> ix;  // cos, sin broadcast over the rotated value
  const E *x, *cos, *sin;
  E* out;  // the rotated value; null when it only goes to the cache
  I items, dim, half;
  I table_step[2];  // cos's and sin's strides along D (0 where broadcast)
  DivMod<I> row_items;  // the loop's work items per row: half / N, or a norm's lane group
  SeqMajorRows<I> x_rows;  // x_seq_major: x is [B, L, H, D] for rows [B, H, L, D]
  // With a cache (non-null): the rotated value lands in the cache's rows as index_copy_kernel
  // moves its x (CacheRows).
  E* cache;
  CacheRows<I> cache_rows;
  // With a norm (rope_kernel's kNorm): RmsNorm's fields, the weight null when there is none.
  I per_row = 0;  // items of N per row, half / N (row_items is then the lane group)
  const E* norm_weight = nullptr;
  float norm_eps = 0.f;
  bool unit_offset = false, round_normalized = false;
  DType dtype = DType::F32;  // E's
};

// Offset in x of the first element of row `row` of the rotated value.
template <class E, class I>
__device__ __forceinline__ I rope_x_row(const RopeArgs<E, I>& a, I row) {
  return a.x_rows.row(row) * a.dim;
}

// Normalizes N elements of a row of x in place (w: the weight at their positions), each rounded
// to E as the separate RmsNorm's output is stored.
template <class E, int N, class I>
__device__ __forceinline__ void rope_normalize(const RopeArgs<E, I>& a, float* v, const float* w, float rstd) {
#pragma unroll
  for (int t = 0; t < N; ++t) {
    v[t] = round_to<E>(rms_normalize(v[t], rstd, a.dtype, a.round_normalized, a.norm_weight != nullptr, w[t],
                                     a.unit_offset));
  }
}

// Rotates item `item` of row `row` (x's row at x_row), its x normalized with `rstd` when kNorm.
template <class E, int N, class I, bool kNorm>
__device__ __forceinline__ void rope_item(const RopeArgs<E, I>& a, I row, I x_row, I item, float rstd) {
  const I d = item * N, i = row * a.dim + d, xi = x_row + d;  // element i pairs with element i + half
  I off[2];
  a.ix.offsets(i, off);
  // The cache rows' positions, x and the tables are all loaded before any of them is used
  // (without a cache the position read is a dummy: see rope()).
  const auto slot_lo = a.cache_rows.slot(i), slot_hi = a.cache_rows.slot(i + a.half);
  float x1[N], x2[N], c1[N], c2[N], s1[N], s2[N], lo[N], hi[N], w1[N] = {}, w2[N] = {};
  load_n<N>(a.x + xi, x1);
  load_n<N>(a.x + xi + a.half, x2);
  load_n<N>(a.cos + off[0], c1);
  load_n<N>(a.cos + off[0] + a.half * a.table_step[0], c2);
  load_n<N>(a.sin + off[1], s1);
  load_n<N>(a.sin + off[1] + a.half * a.table_step[1], s2);
  if (kNorm && a.norm_weight) {
    load_n<N>(a.norm_weight + d, w1);
    load_n<N>(a.norm_weight + d + a.half, w2);
  }
  I at_lo = 0, at_hi = 0;
  const bool to_lo = a.cache && a.cache_rows.place(slot_lo, at_lo);
  const bool to_hi = a.cache && a.cache_rows.place(slot_hi, at_hi);
  if (kNorm) {
    rope_normalize<E, N>(a, x1, w1, rstd);
    rope_normalize<E, N>(a, x2, w2, rstd);
  }
  // x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1); products are not fused into
  // the add (__fmul_rn), as the unfused ops (and the CPU engine) round each of them.
#pragma unroll
  for (int t = 0; t < N; ++t) {
    lo[t] = round_to<E>(__fmul_rn(x1[t], c1[t])) + round_to<E>(__fmul_rn(-x2[t], s1[t]));
    hi[t] = round_to<E>(__fmul_rn(x2[t], c2[t])) + round_to<E>(__fmul_rn(x1[t], s2[t]));
  }
  if (a.out) {
    store_n<N>(a.out + i, lo);
    store_n<N>(a.out + i + a.half, hi);
  }
  if (to_lo) store_n<N>(a.cache + at_lo, lo);
  if (to_hi) store_n<N>(a.cache + at_hi, hi);
}

// With a norm, a row is shared by a group of lanes (row_items.d of them: a power of two, at most
// 32, aligned in the warp), lane `lane` taking the row's items lane, lane + group, ...: the lanes
// sum the squares of their x, combine the sums with shuffles, then rotate their items with the
// row's rstd (re-reading x, now from L1). Every lane of the group takes part in the shuffles,
// those without an item too.
template <class E, int N, class I>
__device__ __forceinline__ void rope_normed_row(const RopeArgs<E, I>& a, I row, I lane) {
  const I x_row = rope_x_row(a, row), group = a.row_items.d;
  float sum_sq = 0.f;
  for (I item = lane; item < a.per_row; item += group) {
    float x1[N], x2[N];
    load_n<N>(a.x + x_row + item * N, x1);
    load_n<N>(a.x + x_row + item * N + a.half, x2);
#pragma unroll
    for (int t = 0; t < N; ++t) sum_sq += x1[t] * x1[t] + x2[t] * x2[t];
  }
  sum_sq = lane_group_reduce(sum_sq, SumOp(), static_cast<unsigned>(group));
  const float rstd = rsqrtf(sum_sq / static_cast<float>(a.dim) + a.norm_eps);
  for (I item = lane; item < a.per_row; item += group) rope_item<E, N, I, true>(a, row, x_row, item, rstd);
}

// The loop's work item w is (row, item) without a norm, (row, lane of its group) with one. The
// groups never straddle a warp or the loop's end: the group divides 32 and so the block size and
// the grid stride, and `items` is a whole number of groups.
template <class E, int N, class I, bool kNorm>
__global__ void rope_kernel(RopeArgs<E, I> a) {
  begin_dependent_grid();
  for (I w = grid_first<I>(); w < a.items; w += grid_stride<I>()) {
    I item;
    const I row = a.row_items.divmod(w, item);
    if constexpr (kNorm) rope_normed_row<E, N>(a, row, item);
    else rope_item<E, N, I, false>(a, row, rope_x_row(a, row), item, 0.f);
  }
}

// A norm's lane group: the smallest power of two that gives each of a row's items a lane, up to a
// warp (its lanes then take several items each).
int64_t rope_lane_group(int64_t per_row) {
  int64_t group = 1;
  while (group < per_row && group < 32) group *= 2;
  return group;
}

// One of rope_kernel's four forms: 16-byte or scalar items, with or without a norm.
template <class E, int kVec, class I>
void launch_rope(const Context& c, const RopeArgs<E, I>& a, bool vector, bool norm) {
  const unsigned grid = grid_for(a.items);
  if (vector && norm) launch_overlapped(rope_kernel<E, kVec, I, true>, grid, kThreads, 0, c.stream, a);
  else if (vector) launch_overlapped(rope_kernel<E, kVec, I, false>, grid, kThreads, 0, c.stream, a);
  else if (norm) launch_overlapped(rope_kernel<E, 1, I, true>, grid, kThreads, 0, c.stream, a);
  else launch_overlapped(rope_kernel<E, 1, I, false>, grid, kThreads, 0, c.stream, a);
}

}  // namespace

// With a cache (p.cache_dim >= 0) n.out is the cache and the rotated value (rope_rows) is walked
// instead, each element stored into its cache row (and into extra_out[0] when present).
Status rope(const Context& c, const Node& n, const RopeParams& p) {
  const TensorRef &x = n.in[0], &cos = n.in[1], &sin = n.in[2];
  const TensorRef rows = rope_rows(n, p);
  const TensorRef* norm_weight = rope_norm_weight(n, p);
  const int64_t count = rows.numel();
  if (count == 0) return Status::ok();
  const TensorRef* tables[2] = {&cos, &sin};
  const OperandWalk<2> walk = broadcast_walk<2>(rows, tables);
  const bool to_cache = p.cache_dim >= 0;
  int64_t cache_inner = 1;
  for (int d = p.cache_dim + 1; to_cache && d < n.out.rank; ++d) cache_inner *= n.out.shape[d];
  const bool narrow = walk.fits_index32() && fits_index32(x.numel()) && (!to_cache || fits_index32(n.out.numel()));
  const int64_t dim = rows.size(-1), half = dim / 2, vec = 16 / static_cast<int64_t>(dtype_size(rows.dtype));
  // 16-byte items where a row's half is whole vectors, the tables are not broadcast along D (so
  // their N elements are contiguous) and every pointer (and cache row) is 16-byte aligned.
  const int last = rows.rank - 1;
  const void* weight = norm_weight ? norm_weight->data : nullptr;
  const bool vector = half % vec == 0 && walk.strides[0][last] == 1 && walk.strides[1][last] == 1 &&
                      all_aligned16({x.data, cos.data, sin.data, rows.data, weight}) &&
                      (!to_cache || (aligned16(n.out.data) && cache_inner % vec == 0));
  const int64_t per_row = vector ? half / vec : half;
  const int64_t row_work = p.norm ? rope_lane_group(per_row) : per_row;  // the loop's items per row
  const int64_t items = count / dim * row_work;
  with_float_storage(rows.dtype, [&](auto e) {
    using E = decltype(e);
    constexpr int kVec = 16 / sizeof(E);
    with_index_type(narrow, [&](auto index) {
      using I = decltype(index);
      RopeArgs<E, I> a{walk.indexer<I>(), static_cast<const E*>(x.data), static_cast<const E*>(cos.data),
                       static_cast<const E*>(sin.data), static_cast<E*>(rows.data), static_cast<I>(items),
                       static_cast<I>(dim), static_cast<I>(half),
                       {static_cast<I>(walk.strides[0][last]), static_cast<I>(walk.strides[1][last])},
                       DivMod<I>(row_work), SeqMajorRows<I>(p.x_seq_major, rows.shape[1], rows.shape[2]),
                       nullptr, {}};
      if (to_cache) {
        a.cache = static_cast<E*>(n.out.data);
        a.cache_rows = cache_rows<I>(n.out, p.cache_dim, n.in[3], c.error_flag);
      } else {
        // No positions to read, but the kernel reads one anyway (the error word, a valid int,
        // never placed): a branch around the position loads would let the compiler schedule
        // x's loads and their conversions first, and the positions' loads would wait for x's.
        a.cache_rows = CacheRows<I>{c.error_flag, DType::I32, DivMod<I>(1), DivMod<I>(1), 0, c.error_flag};
      }
      if (p.norm) {
        a.per_row = static_cast<I>(per_row);
        a.norm_weight = static_cast<const E*>(weight);
        a.norm_eps = static_cast<float>(p.norm->eps);
        a.unit_offset = p.norm->unit_offset;
        a.round_normalized = p.norm->round_normalized;
        a.dtype = rows.dtype;
      }
      launch_rope<E, kVec>(c, a, vector, p.norm.has_value());
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("rope kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
