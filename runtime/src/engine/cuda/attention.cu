// Scaled dot-product attention: q [B, H, L, E], k [B, Hkv, S, E], v [B, Hkv, S, Ev], grouped
// query heads (H % Hkv == 0), optional mask broadcast to [B, H, L, S] (bool keeps where true,
// floats add), causal aligned to the end (query i sees keys j <= i + S - L), scale 0 = 1/sqrt(E);
// out [B, H, L, Ev], or [B, L, H, Ev] with out_seq_major (sdpa_out_rows places every row).
//
// One warp owns one query row and streams the keys in tiles of 32 with an online softmax (running
// max and sum, flash-attention style), so scores never reach device memory. The 4 warps of a
// block take 4 rows that read the same kv head and share each K/V tile through shared memory.
// Lane j scores key j of a tile; for the weighted sum each lane owns output dims lane + 32 t.
// For decode (few query rows, many keys) the keys are split across blocks: each split writes its
// partial (max, sum, unnormalised output) to the engine's fixed scratch and a second kernel merges
// them. A row that sees no key at all gives zeros (as PyTorch's safe softmax does). Decode-shaped
// problems (few query rows, 16-byte vectors) go to attention_decode.cu, fp16/bf16 prefill with head
// dim 64 or 128 to attention_prefill.cu (tensor cores); this kernel covers the rest.
#include <algorithm>
#include <cmath>

#include "engine/cuda/attention.h"
#include "engine/cuda/attention_merge.cuh"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

constexpr int kWarps = 4;        // query rows per block
constexpr int kTile = 32;        // keys per tile (one per lane)
constexpr int kMaxHeadDim = 256; // E and Ev; 8 output dims per lane
constexpr int kDimsPerLane = kMaxHeadDim / 32;

struct SdpaArgs {
  const void *q, *k, *v;
  void* out;
  DType dtype;
  int64_t B, H, Hkv, L, S, E, Ev;
  SdpaMask mask;
  SeqMajorRows<int64_t> out_rows;  // where output row (b * H + h) * L + i is stored
  float scale;
  bool causal;
  int splits;               // > 1: write partials for the merge kernel
  int64_t keys_per_split;
  float* partial;           // [B * H * L][splits][Ev + 2]: output, then max and sum
};

size_t shared_bytes(int64_t e, int64_t ev) {
  return sizeof(float) * (kTile * (e + 1) + kTile * ev + kWarps * e);
}

__global__ void __launch_bounds__(kWarps * 32) sdpa_kernel(SdpaArgs a) {
  extern __shared__ float smem[];
  float* ks = smem;                          // [kTile][E + 1]: padded so lanes hit distinct banks
  float* vs = ks + kTile * (a.E + 1);        // [kTile][Ev]
  float* qs = vs + kTile * a.Ev;             // [kWarps][E]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // The block's warps take consecutive rows of the [group, L] rows that share one kv head (group
  // = H / Hkv query heads), so every K/V tile it loads serves all of them: for decode (L = 1)
  // that is the GQA group, for prefill consecutive queries of one head.
  const int64_t bk = blockIdx.y, b = bk / a.Hkv, hk = bk % a.Hkv, group = a.H / a.Hkv;
  const int64_t r0 = int64_t(blockIdx.x) * kWarps, r = r0 + warp;
  const bool active = r < group * a.L;
  const int64_t h = hk * group + (active ? r / a.L : 0), i = active ? r % a.L : 0;
  const int64_t bh = b * a.H + h;
  const int split = blockIdx.z;
  const int64_t key_begin = split * a.keys_per_split;
  int64_t key_end = key_begin + a.keys_per_split < a.S ? key_begin + a.keys_per_split : a.S;
  if (a.causal) {
    // The block's latest query sees the most keys; tiles past it are skipped entirely.
    int64_t last_i = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int64_t rw = r0 + w;
      if (rw < group * a.L && rw % a.L > last_i) last_i = rw % a.L;
    }
    const int64_t visible_end = last_i + a.S - a.L + 1;
    if (visible_end < key_end) key_end = visible_end;
  }
  const int64_t limit = a.causal ? i + a.S - a.L : a.S - 1;  // last key this row sees

  const int64_t q_base = (bh * a.L + i) * a.E;
  for (int64_t e = lane; e < a.E; e += 32) qs[warp * a.E + e] = active ? load_as<float>(a.q, a.dtype, q_base + e) : 0.f;
  const int64_t kv_row = (b * a.Hkv + hk) * a.S;
  const int64_t mask_base = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2];

  float m = -INFINITY, l = 0.f, acc[kDimsPerLane];
#pragma unroll
  for (int t = 0; t < kDimsPerLane; ++t) acc[t] = 0.f;

  for (int64_t s0 = key_begin; s0 < key_end; s0 += kTile) {
    __syncthreads();  // the previous tile is no longer read (and qs is written, first time round)
    const int64_t tile = key_end - s0 < kTile ? key_end - s0 : kTile;
    for (int64_t x = threadIdx.x; x < tile * a.E; x += blockDim.x) {
      const int64_t j = x / a.E, e = x % a.E;
      ks[j * (a.E + 1) + e] = load_as<float>(a.k, a.dtype, (kv_row + s0 + j) * a.E + e);
    }
    for (int64_t x = threadIdx.x; x < tile * a.Ev; x += blockDim.x) {
      vs[x] = load_as<float>(a.v, a.dtype, (kv_row + s0) * a.Ev + x);
    }
    __syncthreads();
    if (!active) continue;
    const int64_t j = s0 + lane;
    float score = -INFINITY;
    if (lane < tile && j <= limit) {
      const float* kr = ks + lane * (a.E + 1);
      const float* qr = qs + warp * a.E;
      float dot = 0.f;
      for (int64_t e = 0; e < a.E; ++e) dot += qr[e] * kr[e];
      score = dot * a.scale;
      if (a.mask.data) {
        const int64_t mo = mask_base + j * a.mask.strides[3];
        if (a.mask.dtype == DType::Bool) {
          if (!static_cast<const uint8_t*>(a.mask.data)[mo]) score = -INFINITY;
        } else {
          score += load_as<float>(a.mask.data, a.mask.dtype, mo);
        }
      }
    }
    const float m_new = fmaxf(m, warp_reduce(score, MaxOp()));
    if (m_new == -INFINITY) continue;  // nothing visible yet: the state stays empty
    const float p = score == -INFINITY ? 0.f : expf(score - m_new);
    const float corr = m == -INFINITY ? 0.f : expf(m - m_new);
    l = l * corr + warp_reduce(p, SumOp());
    m = m_new;
#pragma unroll
    for (int t = 0; t < kDimsPerLane; ++t) acc[t] *= corr;
    for (int jj = 0; jj < tile; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
      for (int t = 0; t < kDimsPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d < a.Ev) acc[t] += pj * vs[jj * a.Ev + d];
      }
    }
  }
  if (!active) return;
  if (a.splits > 1) {
    float* part = a.partial + ((bh * a.L + i) * a.splits + split) * (a.Ev + 2);
#pragma unroll
    for (int t = 0; t < kDimsPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < a.Ev) part[d] = acc[t];
    }
    if (lane == 0) { part[a.Ev] = m; part[a.Ev + 1] = l; }
    return;
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
  const int64_t o_base = a.out_rows.row(bh * a.L + i) * a.Ev;
#pragma unroll
  for (int t = 0; t < kDimsPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < a.Ev) store_from<float>(a.out, a.dtype, o_base + d, acc[t] * inv);
  }
}

// One block per query row: rescale each split's sum and output to the row's max (merge_rows).
__global__ void sdpa_merge_kernel(const float* partial, void* out, DType dtype, SeqMajorRows<int64_t> out_rows,
                                  int splits, int64_t ev) {
  merge_rows(partial, out, dtype, out_rows, blockIdx.x, 1, splits, ev);
}

}  // namespace

Status attention_init() {
  ETGPU_CUDA_CHECK(cudaFuncSetAttribute(sdpa_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared_bytes(kMaxHeadDim, kMaxHeadDim))));
  return sdpa_prefill_init();
}

Status sdpa_merge(const Context& c, const float* partial, const TensorRef& out, const SeqMajorRows<int64_t>& out_rows,
                  int64_t rows, int splits, int64_t ev) {
  const unsigned blocks = static_cast<unsigned>(rows);  // one per output row
  sdpa_merge_kernel<<<blocks, 128, 0, c.stream>>>(partial, out.data, out.dtype, out_rows, splits, ev);
  ETGPU_CUDA_LAUNCH_CHECK("sdpa merge kernel");
  return Status::ok();
}

SdpaMask sdpa_mask(const Node& n, const SdpaParams& p) {
  SdpaMask mask;
  if (!p.has_mask) return mask;
  mask.data = n.in[3].data;
  mask.dtype = n.in[3].dtype;
  broadcast_strides(n.in[3], sdpa_scores(n), mask.strides);
  return mask;
}

double sdpa_scale(const SdpaParams& p, int64_t head_dim) {
  return p.scale != 0.0 ? p.scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

float sdpa_scale_log2(const SdpaParams& p, int64_t head_dim) {
  return static_cast<float>(sdpa_scale(p, head_dim) * 1.4426950408889634);  // log2(e), in double
}

Status sdpa(const Context& c, const Node& n, const SdpaParams& p) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &out = n.out;
  if (out.numel() == 0) return Status::ok();
  bool handled = false;
  ETGPU_RETURN_IF_ERROR(sdpa_decode(c, n, p, &handled));
  if (!handled) ETGPU_RETURN_IF_ERROR(sdpa_prefill(c, n, p, &handled));
  if (handled) return Status::ok();
  SdpaArgs a{};
  a.q = q.data; a.k = k.data; a.v = v.data; a.out = out.data;
  a.dtype = q.dtype;
  a.B = q.shape[0]; a.H = q.shape[1]; a.L = q.shape[2]; a.E = q.shape[3];
  a.Hkv = k.shape[1]; a.S = k.shape[2]; a.Ev = v.shape[3];
  ETGPU_CHECK(a.E <= kMaxHeadDim && a.Ev <= kMaxHeadDim, "sdpa: head dims up to ", kMaxHeadDim,
              " are supported on cuda, got E=", a.E, ", Ev=", a.Ev);
  a.scale = static_cast<float>(sdpa_scale(p, a.E));
  a.causal = p.causal;
  a.mask = sdpa_mask(n, p);
  a.out_rows = sdpa_out_rows<int64_t>(n, p);
  const int64_t bh = a.B * a.H, bk = a.B * a.Hkv;
  const int64_t row_blocks = ((a.H / a.Hkv) * a.L + kWarps - 1) / kWarps;
  ETGPU_CHECK(bk <= 65535 && row_blocks <= INT32_MAX, "sdpa: B * Hkv = ", bk, " exceeds the grid limit");
  // Split the keys when the plain grid would leave most multiprocessors idle (decode).
  a.splits = 1;
  a.keys_per_split = a.S;
  const int64_t blocks = row_blocks * bk;
  if (c.attn_scratch && blocks < c.num_sms && a.S >= 4 * kTile) {
    // Aim at 4 blocks per multiprocessor, each split keeping at least two tiles of keys.
    int64_t splits = std::min<int64_t>((4 * c.num_sms + blocks - 1) / blocks, a.S / (2 * kTile));
    const int64_t per_split_floats = bh * a.L * (a.Ev + 2);
    splits = std::min<int64_t>(splits, static_cast<int64_t>(c.attn_scratch_floats) / per_split_floats);
    splits = std::min<int64_t>(splits, kMaxMergeWeights);  // the merge's weights fit its shared memory
    if (splits > 1) {
      a.keys_per_split = ((a.S + splits - 1) / splits + kTile - 1) / kTile * kTile;
      a.splits = static_cast<int>((a.S + a.keys_per_split - 1) / a.keys_per_split);
      a.partial = c.attn_scratch;
    }
  }
  if (a.splits == 1) a.partial = nullptr;
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(bk), static_cast<unsigned>(a.splits));
  sdpa_kernel<<<grid, kWarps * 32, shared_bytes(a.E, a.Ev), c.stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("sdpa kernel");
  if (a.splits > 1) ETGPU_RETURN_IF_ERROR(sdpa_merge(c, a.partial, out, a.out_rows, bh * a.L, a.splits, a.Ev));
  return Status::ok();
}

}  // namespace etgpu::cuda
