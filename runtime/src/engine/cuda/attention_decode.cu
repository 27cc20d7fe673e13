// Decode attention (flash-decoding): a few query rows (L <= kDecodeMaxQueries) against a long KV
// cache. At decode sizes the work is tiny (a few hundred keys) and the time is latency: an Nsight
// profile of the previous version showed ~3500 dependent instructions per warp at ~8 cycles each
// with one warp per scheduler (17 us per launch, plus a 5 us merge launch). So this kernel keeps
// each warp's instruction chain short and its loads few round trips deep:
//  - one block serves all the query rows of one kv head (the GQA group times L, up to ROWS), so
//    every K/V vector it loads is used by all of them;
//  - a group of LANES threads reads one key row with 16-byte loads (lane owns VEC elements); the
//    group's K and V loads for U keys are issued together, and the dot product's reduction over
//    the group is unrolled (LANES is a template argument);
//  - which keys each row sees (causal bound, bool mask) and the additive mask are staged once per
//    tile into shared memory as a log2-domain bias (-inf: not seen) by all threads with coalesced
//    loads, so a key no row sees is never loaded and the mask costs one round trip per tile;
//  - every lane group keeps its own online softmax (max, sum, output) over its keys; groups and
//    warps are combined once at the end;
//  - the keys are cut into tiles of kTileKeys, and split s takes tiles s, s + splits, ...: a
//    static cache's valid prefix is spread evenly over the splits whatever the position;
//  - with several splits, each block writes its partial and the last block of a head to finish
//    (a counter in Context::attn_counters) merges them, instead of a second launch.
#include <algorithm>

#include "engine/cuda/attention.h"
#include "engine/cuda/attention_merge.cuh"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kTileKeys = 64;  // the unit splits interleave over, and the bias staging unit
constexpr int kMaxRows = 8;    // query rows per block
constexpr int kMaxDim = 256;   // E, Ev (bf16/fp16; 128 for fp32)
constexpr int kMaxSplits = kMaxMergeWeights / kMaxRows;

struct DecodeArgs {
  const void *q, *k, *v;
  void* out;
  DType dtype;
  int H, Hkv, L, S, E, Ev;
  SdpaMask mask;
  SeqMajorRows<uint32_t> out_rows;  // where output row (b * H + h) * L + i is stored
  float scale_log2;  // scale * log2(e): scores live in the exp2 domain
  bool causal;
  int rows;          // group * L: the query rows sharing one kv head
  int splits;
  float* partial;    // splits > 1: [B * H * L][splits][Ev + 2]
  unsigned* counters;  // splits > 1: one per (kv head, row block), zero between launches
};

// The log2-domain bias of key j for block row r (r0 + r of the head's rows): -inf when the row
// does not see the key (past the cache, past the causal bound, mask false), else the additive
// mask times log2(e) or 0.
__device__ __forceinline__ float key_bias(const DecodeArgs& a, int b, int hk, int row, int j) {
  if (row >= a.rows || j >= a.S) return -INFINITY;
  const int h = hk * (a.H / a.Hkv) + row / a.L, i = row % a.L;
  if (a.causal && j > i + a.S - a.L) return -INFINITY;
  if (!a.mask.data) return 0.f;
  const int64_t at = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2] + j * a.mask.strides[3];
  if (a.mask.dtype == DType::Bool) return static_cast<const uint8_t*>(a.mask.data)[at] ? 0.f : -INFINITY;
  return kLog2e * load_as<float>(a.mask.data, a.mask.dtype, at);
}

// Per lane group: the online softmax state of each row over the keys the group has seen.
template <int ROWS, int VEC>
struct RowState {
  float m[ROWS], l[ROWS], acc[ROWS][VEC];
};

// Folds the state of the lane groups xor-distant by LANES..16 into each lane (all lanes of a
// group hold the same m and l): rescale to the common max, then sum.
template <int ROWS, int VEC, int LANES>
__device__ __forceinline__ void combine_groups(RowState<ROWS, VEC>& st) {
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    float m = st.m[r];
#pragma unroll
    for (int off = LANES; off < 32; off <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    const float scale = st.m[r] == -INFINITY ? 0.f : exp2f(st.m[r] - m);
    st.m[r] = m;
    st.l[r] *= scale;
#pragma unroll
    for (int t = 0; t < VEC; ++t) st.acc[r][t] *= scale;
#pragma unroll
    for (int off = LANES; off < 32; off <<= 1) {
      st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], off);
#pragma unroll
      for (int t = 0; t < VEC; ++t) st.acc[r][t] += __shfl_xor_sync(0xffffffffu, st.acc[r][t], off);
    }
  }
}

template <class T, int ROWS, int LANES>
__global__ void __launch_bounds__(kWarps * 32) sdpa_decode_kernel(DecodeArgs a) {
  constexpr int VEC = 16 / sizeof(T);
  constexpr int GROUPS = 32 / LANES;                  // key rows a warp reads at once
  constexpr int U = ROWS >= 8 ? 2 : 4;                // keys per lane group in flight
  constexpr int kWarpKeys = kTileKeys / kWarps;       // a warp's keys of each tile
  static_assert(kWarpKeys % GROUPS == 0, "a warp's keys split evenly over its lane groups");
  __shared__ float bias[ROWS][kTileKeys];
  begin_dependent_grid();
  __shared__ float warp_m[kWarps][ROWS], warp_l[kWarps][ROWS];
  __shared__ float warp_acc[kWarps][ROWS][kMaxDim];
  __shared__ bool last_block;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % LANES, group = lane / LANES;
  const int b = blockIdx.y / a.Hkv, hk = blockIdx.y % a.Hkv;
  const int r0 = blockIdx.z * ROWS, split = blockIdx.x;
  const int rows_here = min(ROWS, a.rows - r0);
  const int64_t head_row = (int64_t(b) * a.H + int64_t(hk) * (a.H / a.Hkv)) * a.L + r0;  // first output row
  const T* kbase = static_cast<const T*>(a.k) + (int64_t(b) * a.Hkv + hk) * a.S * a.E + sub * VEC;
  const T* vbase = static_cast<const T*>(a.v) + (int64_t(b) * a.Hkv + hk) * a.S * a.Ev + sub * VEC;
  const bool k_lane = sub * VEC < a.E, v_lane = sub * VEC < a.Ev;

  // The rows' query slices, pre-scaled into the exp2 domain (rows are consecutive output rows).
  float q[ROWS][VEC];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (r < rows_here && k_lane) raw = *reinterpret_cast<const uint4*>(static_cast<const T*>(a.q) + (head_row + r) * a.E + sub * VEC);
    unpack_vec<T>(raw, q[r]);
#pragma unroll
    for (int t = 0; t < VEC; ++t) q[r][t] *= a.scale_log2;
  }
  RowState<ROWS, VEC> st;
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    st.m[r] = -INFINITY;
    st.l[r] = 0.f;
#pragma unroll
    for (int t = 0; t < VEC; ++t) st.acc[r][t] = 0.f;
  }

  const int tiles = (a.S + kTileKeys - 1) / kTileKeys;
  for (int tile = split; tile < tiles; tile += a.splits) {
    const int key0 = tile * kTileKeys;
    // 1. Stage the tile's bias for every row; skip the tile when no row sees any of its keys.
    bool any = false;
    for (int x = threadIdx.x; x < ROWS * kTileKeys; x += kWarps * 32) {
      const int r = x / kTileKeys, c = x % kTileKeys;
      const float bv = key_bias(a, b, hk, r0 + r, key0 + c);
      bias[r][c] = bv;
      any |= bv != -INFINITY;
    }
    if (!__syncthreads_or(any)) continue;
    // 2. The warp's keys, U per lane group at a time: K and V rows loaded together.
    for (int c0 = warp * kWarpKeys + group; c0 < (warp + 1) * kWarpKeys; c0 += GROUPS * U) {
      uint4 kraw[U], vraw[U];
      bool seen[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = c0 + u * GROUPS;
        bool s = false;
        if (c < (warp + 1) * kWarpKeys) {
#pragma unroll
          for (int r = 0; r < ROWS; ++r) s |= bias[r][c] != -INFINITY;
        }
        seen[u] = s;
        kraw[u] = vraw[u] = make_uint4(0, 0, 0, 0);
        if (s && k_lane) kraw[u] = *reinterpret_cast<const uint4*>(kbase + int64_t(key0 + c) * a.E);
        if (s && v_lane) vraw[u] = *reinterpret_cast<const uint4*>(vbase + int64_t(key0 + c) * a.Ev);
      }
      float score[U][ROWS];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float kv[VEC];
        unpack_vec<T>(kraw[u], kv);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          float dot = 0.f;
#pragma unroll
          for (int t = 0; t < VEC; ++t) dot = fmaf(q[r][t], kv[t], dot);
#pragma unroll
          for (int off = LANES / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
          const int c = c0 + u * GROUPS;
          score[u][r] = seen[u] ? dot + bias[r][c] : -INFINITY;  // the bias is -inf where this row does not see it
        }
      }
      // 3. Online softmax update of each row with the U keys.
#pragma unroll
      for (int r = 0; r < ROWS; ++r) {
        float m = st.m[r];
#pragma unroll
        for (int u = 0; u < U; ++u) m = fmaxf(m, score[u][r]);
        const float base = m == -INFINITY ? 0.f : m;  // nothing seen yet: every weight is 0
        const float corr = exp2f(st.m[r] - base);
        st.m[r] = m;
        st.l[r] *= corr;
#pragma unroll
        for (int t = 0; t < VEC; ++t) st.acc[r][t] *= corr;
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const float p = exp2f(score[u][r] - base);
          float vv[VEC];
          unpack_vec<T>(vraw[u], vv);
          st.l[r] += p;
#pragma unroll
          for (int t = 0; t < VEC; ++t) st.acc[r][t] = fmaf(p, vv[t], st.acc[r][t]);
        }
      }
    }
    __syncthreads();  // the next tile rewrites bias
  }

  // 4. Combine the lane groups of each warp (shuffles), then the warps (shared memory).
  combine_groups<ROWS, VEC, LANES>(st);
  if (lane < LANES) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      if (lane == 0) { warp_m[warp][r] = st.m[r]; warp_l[warp][r] = st.l[r]; }
      if (v_lane) {
#pragma unroll
        for (int t = 0; t < VEC; ++t) warp_acc[warp][r][sub * VEC + t] = st.acc[r][t];
      }
    }
  }
  __syncthreads();
  for (int x = threadIdx.x; x < rows_here * a.Ev; x += kWarps * 32) {
    const int r = x / a.Ev, d = x % a.Ev;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, warp_m[w][r]);
    float o = 0.f, l = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float scale = warp_m[w][r] == -INFINITY ? 0.f : exp2f(warp_m[w][r] - m);
      o += warp_acc[w][r][d] * scale;
      l += warp_l[w][r] * scale;
    }
    const int64_t row = head_row + r;
    if (a.splits > 1) {
      float* part = a.partial + (row * a.splits + split) * (a.Ev + 2);
      part[d] = o;
      if (d == 0) { part[a.Ev] = m / kLog2e; part[a.Ev + 1] = l; }
    } else {
      store_from<float>(a.out, a.dtype, int64_t(a.out_rows.row(static_cast<uint32_t>(row))) * a.Ev + d,
                        l > 0.f ? o / l : 0.f);
    }
  }
  if (a.splits == 1) return;
  // 5. The last of the head's splits to finish merges all of them (threadfence reduction).
  __threadfence();
  __syncthreads();
  unsigned* counter = a.counters + blockIdx.y * gridDim.z + blockIdx.z;
  if (threadIdx.x == 0) last_block = atomicAdd(counter, 1u) == static_cast<unsigned>(a.splits - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  merge_rows(a.partial, a.out, a.dtype, a.out_rows, head_row, rows_here, a.splits, a.Ev);
  if (threadIdx.x == 0) *counter = 0;  // ready for the next launch (the stream orders them)
}

template <class T, int ROWS>
void launch_rows(int lanes, dim3 grid, const DecodeArgs& a, cudaStream_t stream) {
  constexpr int kMinLanes = 64 / (16 / sizeof(T)) < 32 ? 64 / (16 / sizeof(T)) : 32;  // head dim 64
  switch (lanes < kMinLanes ? kMinLanes : lanes) {
    case 32: launch_overlapped(sdpa_decode_kernel<T, ROWS, 32>, grid, kWarps * 32, 0, stream, a); break;
    case 16: launch_overlapped(sdpa_decode_kernel<T, ROWS, 16>, grid, kWarps * 32, 0, stream, a); break;
    default: launch_overlapped(sdpa_decode_kernel<T, ROWS, 8>, grid, kWarps * 32, 0, stream, a); break;
  }
}

template <class T>
void launch(int rows_per_block, int lanes, dim3 grid, const DecodeArgs& a, cudaStream_t stream) {
  switch (rows_per_block) {
    case 1: launch_rows<T, 1>(lanes, grid, a, stream); break;
    case 2: launch_rows<T, 2>(lanes, grid, a, stream); break;
    case 4: launch_rows<T, 4>(lanes, grid, a, stream); break;
    default: launch_rows<T, kMaxRows>(lanes, grid, a, stream); break;
  }
}

}  // namespace

Status sdpa_decode(const Context& c, const Node& n, const SdpaParams& p, bool* handled) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &out = n.out;
  *handled = false;
  const int64_t B = q.shape[0], H = q.shape[1], L = q.shape[2], E = q.shape[3];
  const int64_t Hkv = k.shape[1], S = k.shape[2], Ev = v.shape[3];
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(q.dtype));
  const int64_t widest = std::max(E, Ev);
  // 32-bit key and row indices; the mask's and the cache's element offsets stay 64-bit.
  if (L > kDecodeMaxQueries || E % vec || Ev % vec || widest > kMaxDim || widest / vec > 32 ||
      S > INT32_MAX / 2 || B * H * L > INT32_MAX || B * Hkv > 65535 ||
      !aligned16(q.data) || !aligned16(k.data) || !aligned16(v.data)) {
    return Status::ok();
  }
  DecodeArgs a{};
  a.q = q.data; a.k = k.data; a.v = v.data; a.out = out.data;
  a.dtype = q.dtype;
  a.H = static_cast<int>(H); a.Hkv = static_cast<int>(Hkv); a.L = static_cast<int>(L);
  a.S = static_cast<int>(S); a.E = static_cast<int>(E); a.Ev = static_cast<int>(Ev);
  a.causal = p.causal;
  a.scale_log2 = sdpa_scale_log2(p, E);
  a.mask = sdpa_mask(n, p);
  a.out_rows = sdpa_out_rows<uint32_t>(n, p);
  int lanes = 1;
  while (lanes * vec < widest) lanes *= 2;
  a.rows = static_cast<int>(H / Hkv * L);
  const int rows_per_block = a.rows <= 1 ? 1 : a.rows <= 2 ? 2 : a.rows <= 4 ? 4 : kMaxRows;
  const int64_t row_blocks = (a.rows + rows_per_block - 1) / rows_per_block;
  const int64_t heads = B * Hkv, blocks = heads * row_blocks;
  // Enough splits for ~2 blocks per multiprocessor, at most one per tile, within the scratch, and
  // few enough that the last block's merge holds their weights.
  const int64_t tiles = (S + kTileKeys - 1) / kTileKeys;
  int64_t splits = std::min<int64_t>({tiles, (2 * c.num_sms + blocks - 1) / blocks, kMaxSplits});
  splits = std::min<int64_t>(splits, static_cast<int64_t>(c.attn_scratch_floats) / (B * H * L * (Ev + 2)));
  if (blocks > c.attn_counter_count) splits = 1;  // no counter for each block's merge
  a.splits = static_cast<int>(std::max<int64_t>(splits, 1));
  a.partial = a.splits > 1 ? c.attn_scratch : nullptr;
  a.counters = c.attn_counters;
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(heads), static_cast<unsigned>(row_blocks));
  switch (q.dtype) {
    case DType::F32: launch<float>(rows_per_block, lanes, grid, a, c.stream); break;
    case DType::F16: launch<__half>(rows_per_block, lanes, grid, a, c.stream); break;
    case DType::BF16: launch<__nv_bfloat16>(rows_per_block, lanes, grid, a, c.stream); break;
    default: return Status::ok();
  }
  ETGPU_CUDA_LAUNCH_CHECK("sdpa decode kernel");
  *handled = true;
  return Status::ok();
}

}  // namespace etgpu::cuda
