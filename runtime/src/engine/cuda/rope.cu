// Rope (half-split rotary, schema/etgpu.fbs): optionally of x's [B, L, H, D] layout, optionally
// of x's RMS-normalized rows, optionally storing its rotated rows into a KV cache as IndexCopy
// would. Each intermediate is rounded to the tensors' dtype, as the unfused ops round (the CPU
// reference: cpu/elementwise.cpp).
#include "engine/cuda/cache_copy.cuh"
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
};

// Offset in x of the first element of row `row` of the rotated value.
template <class E, class I>
__device__ __forceinline__ I rope_x_row(const RopeArgs<E, I>& a, I row) {
  return a.x_rows.row(row) * a.dim;
}

// One work item's operands: N consecutive elements of a row's first half and the N of its second
// half they pair with (element i with element i + half), with cos, sin and the cache positions.
template <class I, int N>
struct RopeItem {
  I i;  // the item's first element in the rotated value
  typename CacheRows<I>::Slot slot_lo, slot_hi;
  float x1[N], x2[N], c1[N], c2[N], s1[N], s2[N];
};

// Issues every load of item `item` of row `row` (x's row at x_row) before any of them is used, so
// that they are in flight together (without a cache the position read is a dummy: see rope()).
template <class E, int N, class I>
__device__ __forceinline__ RopeItem<I, N> rope_load(const RopeArgs<E, I>& a, I row, I x_row, I item) {
  RopeItem<I, N> t;
  const I d = item * N, xi = x_row + d;
  t.i = row * a.dim + d;
  I off[2];
  a.ix.offsets(t.i, off);
  t.slot_lo = a.cache_rows.slot(t.i);
  t.slot_hi = a.cache_rows.slot(t.i + a.half);
  load_n<N>(a.x + xi, t.x1);
  load_n<N>(a.x + xi + a.half, t.x2);
  load_n<N>(a.cos + off[0], t.c1);
  load_n<N>(a.cos + off[0] + a.half * a.table_step[0], t.c2);
  load_n<N>(a.sin + off[1], t.s1);
  load_n<N>(a.sin + off[1] + a.half * a.table_step[1], t.s2);
  return t;
}

// Rotates a loaded item, x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1), and stores
// it to the rotated output and the cache rows it has. The products are not fused into the add
// (__fmul_rn): the unfused ops (and the CPU engine) round each of them.
template <class E, int N, class I>
__device__ __forceinline__ void rope_store(const RopeArgs<E, I>& a, const RopeItem<I, N>& t) {
  I at_lo = 0, at_hi = 0;
  const bool to_lo = a.cache && a.cache_rows.place(t.slot_lo, at_lo);
  const bool to_hi = a.cache && a.cache_rows.place(t.slot_hi, at_hi);
  float lo[N], hi[N];
#pragma unroll
  for (int k = 0; k < N; ++k) {
    lo[k] = round_to<E>(__fmul_rn(t.x1[k], t.c1[k])) + round_to<E>(__fmul_rn(-t.x2[k], t.s1[k]));
    hi[k] = round_to<E>(__fmul_rn(t.x2[k], t.c2[k])) + round_to<E>(__fmul_rn(t.x1[k], t.s2[k]));
  }
  if (a.out) {
    store_n<N>(a.out + t.i, lo);
    store_n<N>(a.out + t.i + a.half, hi);
  }
  if (to_lo) store_n<N>(a.cache + at_lo, lo);
  if (to_hi) store_n<N>(a.cache + at_hi, hi);
}

// The norm weight at item `item`'s positions. Without a weight it reads x's row (x_row) instead,
// values rms_normalize then ignores: a branch around the loads would let the compiler convert the
// weight inside it, and every load after the branch would wait for the weight's.
template <class E, int N, class I>
__device__ __forceinline__ void rope_load_weight(const RopeArgs<E, I>& a, I x_row, I item, float* w1, float* w2) {
  const E* w = a.norm_weight ? a.norm_weight : a.x + x_row;
  load_n<N>(w + item * N, w1);
  load_n<N>(w + item * N + a.half, w2);
}

template <int N>
__device__ __forceinline__ float add_squares(float sum_sq, const float* x1, const float* x2) {
#pragma unroll
  for (int k = 0; k < N; ++k) sum_sq += x1[k] * x1[k] + x2[k] * x2[k];
  return sum_sq;
}

// Normalizes N elements of a row of x in place (w: the weight at their positions), each rounded
// to E as the separate RmsNorm's output is stored.
template <class E, int N, class I>
__device__ __forceinline__ void rope_normalize(const RopeArgs<E, I>& a, float* v, const float* w, float rstd) {
#pragma unroll
  for (int k = 0; k < N; ++k) {
    v[k] = round_to<E>(rms_normalize(v[k], rstd, dtype_of<E>(), a.round_normalized, a.norm_weight != nullptr, w[k],
                                     a.unit_offset));
  }
}

template <class E, int N, class I>
__device__ __forceinline__ void rope_normed_store(const RopeArgs<E, I>& a, RopeItem<I, N>& t, const float* w1,
                                                  const float* w2, float rstd) {
  rope_normalize<E, N>(a, t.x1, w1, rstd);
  rope_normalize<E, N>(a, t.x2, w2, rstd);
  rope_store<E, N>(a, t);
}

// With a norm, a row is shared by a group of lanes (row_items.d of them: a power of two, at most
// 32, aligned in the warp), lane `lane` taking the row's items lane, lane + group, ... Its first
// item's loads (weight, positions, x, cos, sin) are all issued at once, before the row's sum of
// squares is reduced with shuffles, so the row costs one round trip to memory; it is then
// normalized and rotated from registers. Every lane of the group takes part in the shuffles: one
// without an item (the row has fewer) loads the row's last item instead, so that no branch comes
// between the loads, and neither adds its squares nor stores it.
template <class E, int N, class I>
__device__ __forceinline__ void rope_normed_row(const RopeArgs<E, I>& a, I row, I lane) {
  const I x_row = rope_x_row(a, row), group = a.row_items.d;
  const bool has_item = lane < a.per_row;
  const I first = has_item ? lane : a.per_row - 1;
  // The weight's loads follow rope_load's: issued before its index arithmetic (which branches),
  // they would be converted before the branch, and x's loads would wait for them.
  RopeItem<I, N> t = rope_load<E, N>(a, row, x_row, first);
  float w1[N], w2[N];
  rope_load_weight<E, N>(a, x_row, first, w1, w2);
  float sum_sq = has_item ? add_squares<N>(0.f, t.x1, t.x2) : 0.f;
  // Rows of more than 32 items (the scalar kernel above head size 64): a lane's further items add
  // their squares here and are loaded again once rstd is known.
  for (I item = lane + group; item < a.per_row; item += group) {
    float x1[N], x2[N];
    load_n<N>(a.x + x_row + item * N, x1);
    load_n<N>(a.x + x_row + item * N + a.half, x2);
    sum_sq = add_squares<N>(sum_sq, x1, x2);
  }
  sum_sq = lane_group_reduce(sum_sq, SumOp(), static_cast<unsigned>(group));
  const float rstd = rms_rstd(sum_sq, a.dim, a.norm_eps);
  if (has_item) rope_normed_store<E, N>(a, t, w1, w2, rstd);
  for (I item = lane + group; item < a.per_row; item += group) {
    RopeItem<I, N> u = rope_load<E, N>(a, row, x_row, item);
    rope_load_weight<E, N>(a, x_row, item, w1, w2);
    rope_normed_store<E, N>(a, u, w1, w2, rstd);
  }
}

// The loop's work item w is (row, item) without a norm, (row, lane of its group) with one. The
// groups never straddle a warp or the loop's end: the group divides 32 and so the block size and
// the grid stride, and `items` is a whole number of groups.
// `first` and `stride` come from the threads given to this rotation (a whole grid, or a block
// range of a group launch): whole blocks, so whole warps.
template <class E, int N, class I, bool kNorm>
__device__ __forceinline__ void rope_items(const RopeArgs<E, I>& a, I first, I stride) {
  for (I w = first; w < a.items; w += stride) {
    I item;
    const I row = a.row_items.divmod(w, item);
    if constexpr (kNorm) rope_normed_row<E, N>(a, row, item);
    else rope_store<E, N>(a, rope_load<E, N>(a, row, rope_x_row(a, row), item));
  }
}

template <class E, int N, class I, bool kNorm>
__global__ void rope_kernel(RopeArgs<E, I> a) {
  begin_dependent_grid();
  rope_items<E, N, I, kNorm>(a, grid_first<I>(), grid_stride<I>());
}

// A decode layer's independent small launches as one (rope_group): blocks [0, q_blocks) rotate q,
// the next k_blocks rotate k (into its cache), the rest write v's cache rows (none: no v).
template <class E, int N, class I, bool kNorm>
__global__ void rope_group_kernel(RopeArgs<E, I> q, RopeArgs<E, I> k, IndexCopyArgs<uint4, I> v, unsigned q_blocks,
                                  unsigned k_blocks) {
  begin_dependent_grid();
  const unsigned block = blockIdx.x, threads = blockDim.x;
  if (block < q_blocks) {
    rope_items<E, N, I, kNorm>(q, static_cast<I>(block * threads + threadIdx.x), static_cast<I>(q_blocks * threads));
  } else if (block < q_blocks + k_blocks) {
    rope_items<E, N, I, kNorm>(k, static_cast<I>((block - q_blocks) * threads + threadIdx.x),
                               static_cast<I>(k_blocks * threads));
  } else {
    const unsigned v_blocks = gridDim.x - q_blocks - k_blocks;
    index_copy_units(v, static_cast<I>((block - q_blocks - k_blocks) * threads + threadIdx.x),
                     static_cast<I>(v_blocks * threads));
  }
}

// A norm's lane group: the smallest power of two that gives each of a row's items a lane, up to a
// warp (its lanes then take several items each).
int64_t rope_lane_group(int64_t per_row) {
  int64_t group = 1;
  while (group < per_row && group < 32) group *= 2;
  return group;
}

// Calls launch(N, kNorm) as integral constants for one of the kernels' four forms: 16-byte
// (kVec elements) or scalar items, with or without a norm.
template <int kVec, class Launch>
void with_rope_form(bool vector, bool norm, Launch&& launch) {
  using std::integral_constant;
  if (vector && norm) launch(integral_constant<int, kVec>{}, std::true_type{});
  else if (vector) launch(integral_constant<int, kVec>{}, std::false_type{});
  else if (norm) launch(integral_constant<int, 1>{}, std::true_type{});
  else launch(integral_constant<int, 1>{}, std::false_type{});
}

template <class E, int kVec, class I>
void launch_rope(const Context& c, const RopeArgs<E, I>& a, bool vector, bool norm) {
  with_rope_form<kVec>(vector, norm, [&](auto n, auto with_norm) {
    constexpr auto kernel = rope_kernel<E, decltype(n)::value, I, decltype(with_norm)::value>;
    launch_overlapped(kernel, grid_for(a.items), kThreads, 0, c.stream, a);
  });
}

// What a Rope node's launch is made of before its element and index types are chosen.
struct RopePlan {
  TensorRef rows;  // the rotated value (rope_rows)
  OperandWalk<2> walk;
  bool to_cache = false, narrow = false, vector = false, norm = false;
  int64_t dim = 0, half = 0, per_row = 0;
  int64_t row_work = 0, items = 0;  // the loop's work items per row and in all (0: nothing to do)
};

// With a cache (p.cache_dim >= 0) n.out is the cache and the rotated value (rope_rows) is walked
// instead, each element stored into its cache row (and into extra_out[0] when present).
RopePlan plan_rope(const Node& n, const RopeParams& p) {
  const TensorRef &x = n.in[0], &cos = n.in[1], &sin = n.in[2];
  RopePlan plan;
  plan.rows = rope_rows(n, p);
  const TensorRef& rows = plan.rows;
  const int64_t count = rows.numel();
  if (count == 0) return plan;
  const TensorRef* tables[2] = {&cos, &sin};
  plan.walk = broadcast_walk<2>(rows, tables);
  plan.to_cache = p.cache_dim >= 0;
  int64_t cache_inner = 1;
  for (int d = p.cache_dim + 1; plan.to_cache && d < n.out.rank; ++d) cache_inner *= n.out.shape[d];
  plan.narrow = plan.walk.fits_index32() && fits_index32(x.numel()) && (!plan.to_cache || fits_index32(n.out.numel()));
  plan.dim = rows.size(-1);
  plan.half = plan.dim / 2;
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(rows.dtype));
  // 16-byte items where a row's half is whole vectors, the tables are not broadcast along D (so
  // their N elements are contiguous) and every pointer (and cache row) is 16-byte aligned.
  const int last = rows.rank - 1;
  const TensorRef* norm_weight = rope_norm_weight(n, p);
  plan.vector = plan.half % vec == 0 && plan.walk.strides[0][last] == 1 && plan.walk.strides[1][last] == 1 &&
                all_aligned16({x.data, cos.data, sin.data, rows.data, norm_weight ? norm_weight->data : nullptr}) &&
                (!plan.to_cache || (aligned16(n.out.data) && cache_inner % vec == 0));
  plan.norm = p.norm.has_value();
  plan.per_row = plan.vector ? plan.half / vec : plan.half;
  plan.row_work = plan.norm ? rope_lane_group(plan.per_row) : plan.per_row;
  plan.items = count / plan.dim * plan.row_work;
  return plan;
}

template <class E, class I>
RopeArgs<E, I> rope_args(const Context& c, const Node& n, const RopeParams& p, const RopePlan& plan) {
  const TensorRef &x = n.in[0], &cos = n.in[1], &sin = n.in[2];
  const int last = plan.rows.rank - 1;
  RopeArgs<E, I> a{plan.walk.indexer<I>(), static_cast<const E*>(x.data), static_cast<const E*>(cos.data),
                   static_cast<const E*>(sin.data), static_cast<E*>(plan.rows.data), static_cast<I>(plan.items),
                   static_cast<I>(plan.dim), static_cast<I>(plan.half),
                   {static_cast<I>(plan.walk.strides[0][last]), static_cast<I>(plan.walk.strides[1][last])},
                   DivMod<I>(plan.row_work), SeqMajorRows<I>(p.x_seq_major, plan.rows.shape[1], plan.rows.shape[2]),
                   nullptr, {}};
  if (plan.to_cache) {
    a.cache = static_cast<E*>(n.out.data);
    a.cache_rows = cache_rows<I>(n.out, p.cache_dim, n.in[3], c.error_flag);
  } else {
    // No positions to read, but the kernel reads one anyway (the error word, a valid int,
    // never placed): a branch around the position loads would let the compiler schedule
    // x's loads and their conversions first, and the positions' loads would wait for x's.
    a.cache_rows = CacheRows<I>{c.error_flag, DType::I32, DivMod<I>(1), DivMod<I>(1), 0, c.error_flag};
  }
  if (p.norm) {
    const TensorRef* weight = rope_norm_weight(n, p);
    a.per_row = static_cast<I>(plan.per_row);
    a.norm_weight = weight ? static_cast<const E*>(weight->data) : nullptr;
    a.norm_eps = static_cast<float>(p.norm->eps);
    a.unit_offset = p.norm->unit_offset;
    a.round_normalized = p.norm->round_normalized;
  }
  return a;
}

}  // namespace

Status rope(const Context& c, const Node& n, const RopeParams& p) {
  const RopePlan plan = plan_rope(n, p);
  if (plan.items == 0) return Status::ok();
  with_float_storage(plan.rows.dtype, [&](auto e) {
    using E = decltype(e);
    with_index_type(plan.narrow, [&](auto index) {
      using I = decltype(index);
      launch_rope<E, 16 / sizeof(E)>(c, rope_args<E, I>(c, n, p, plan), plan.vector, plan.norm);
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("rope kernel");
  return Status::ok();
}

Status rope_group(const Context& c, const Node* nodes, size_t count, size_t* ran) {
  *ran = 0;
  if (count < 2) return Status::ok();
  const auto* qp = std::get_if<RopeParams>(&nodes[0].params);
  const auto* kp = std::get_if<RopeParams>(&nodes[1].params);
  if (!qp || !kp || !independent(nodes[0], nodes[1])) return Status::ok();
  const RopePlan q = plan_rope(nodes[0], *qp), k = plan_rope(nodes[1], *kp);
  if (q.items == 0 || k.items == 0 || q.rows.dtype != k.rows.dtype || q.narrow != k.narrow || q.vector != k.vector ||
      q.norm != k.norm) {
    return Status::ok();
  }
  // v's cache write joins when it is independent of both and moves 16-byte units.
  const auto* vp = count > 2 ? std::get_if<IndexCopyParams>(&nodes[2].params) : nullptr;
  const IndexCopyPlan v = vp ? plan_index_copy(nodes[2], *vp) : IndexCopyPlan{};
  const bool with_v = vp && v.units > 0 && v.unit == 16 && v.narrow == q.narrow && independent(nodes[0], nodes[2]) &&
                      independent(nodes[1], nodes[2]);
  *ran = with_v ? 3 : 2;  // set before the launch, so that a failure names the whole group
  const unsigned q_blocks = grid_for(q.items), k_blocks = grid_for(k.items);
  const unsigned blocks = q_blocks + k_blocks + (with_v ? grid_for(v.units) : 0);
  with_float_storage(q.rows.dtype, [&](auto e) {
    using E = decltype(e);
    with_index_type(q.narrow, [&](auto index) {
      using I = decltype(index);
      using V = IndexCopyArgs<uint4, I>;
      const V v_args = with_v ? index_copy_args<uint4, I>(c, nodes[2], *vp, v) : V{};
      const RopeArgs<E, I> q_args = rope_args<E, I>(c, nodes[0], *qp, q);
      const RopeArgs<E, I> k_args = rope_args<E, I>(c, nodes[1], *kp, k);
      with_rope_form<16 / sizeof(E)>(q.vector, q.norm, [&](auto n, auto with_norm) {
        constexpr auto kernel = rope_group_kernel<E, decltype(n)::value, I, decltype(with_norm)::value>;
        launch_overlapped(kernel, blocks, kThreads, 0, c.stream, q_args, k_args, v_args, q_blocks, k_blocks);
      });
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("rope group kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
