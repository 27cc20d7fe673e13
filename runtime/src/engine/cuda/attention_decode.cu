// Decode attention (flash-decoding): a few query rows (L <= kDecodeMaxQueries) against a long KV
// cache. The generic kernel in attention.cu gives each query row one warp and loads K/V element
// by element into shared memory; with one query row per head that leaves the chip latency-bound
// (73 us for 192 keys). Here:
//  - one block serves all the query rows of one kv head (the GQA group times L, up to ROWS), so
//    every K/V vector it loads is used by all of them;
//  - a group of `lanes` threads reads one key row with 16-byte loads (lane owns VEC elements),
//    several keys per thread in flight;
//  - the keys are cut into tiles of kTileKeys, and split s takes tiles s, s + splits, ...: a
//    static cache's valid prefix is spread evenly over the splits whatever the position, and
//    keys that no row sees (mask false, past the causal bound) are never loaded, so the masked
//    tail of the cache costs a mask read, not a K/V read;
//  - scores of a chunk of keys sit in shared memory (fp32), softmax statistics are merged across
//    chunks online, and the splits' partials go to the same merge kernel as attention.cu's.
#include <algorithm>

#include "engine/cuda/attention.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kTileKeys = 64;                    // the unit splits interleave over
constexpr int kChunkTiles = 4;
constexpr int kChunk = kChunkTiles * kTileKeys;  // keys scored before each softmax update
constexpr int kUnroll = 4;                       // keys per lane group in flight
constexpr int kMaxRows = 8;                      // query rows per block
constexpr int kMaxDim = 256;                     // E, Ev (bf16/fp16; 128 for fp32)

struct DecodeArgs {
  const void *q, *k, *v;
  void* out;
  DType dtype;
  int64_t H, Hkv, L, S, E, Ev;
  SdpaMask mask;
  float scale_log2;         // scale * log2(e): scores live in the exp2 domain
  bool causal;
  int lanes;                // threads per key row: a power of two >= max(E, Ev) / VEC
  int rows;                 // group * L: the query rows sharing one kv head
  int splits;
  float* partial;           // splits > 1: [B * H * L][splits][Ev + 2]
};

// Key index of chunk slot c of chunk ch for this split (or -1 past the cache).
__device__ __forceinline__ int64_t key_of(const DecodeArgs& a, int split, int64_t ch, int c) {
  const int64_t tile = split + int64_t(a.splits) * (ch * kChunkTiles + c / kTileKeys);
  const int64_t j = tile * kTileKeys + c % kTileKeys;
  return j < a.S ? j : -1;
}

template <class T, int ROWS>
__global__ void __launch_bounds__(kWarps * 32) sdpa_decode_kernel(DecodeArgs a) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float scores[ROWS][kChunk];
  __shared__ float row_max[ROWS], row_sum[ROWS], row_corr[ROWS];
  __shared__ float partial_out[kWarps][ROWS][kMaxDim];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % a.lanes;                             // vector index within a key row
  const int slot = (warp * 32 + lane) / a.lanes;              // lane group: one key at a time
  const int slots = kWarps * 32 / a.lanes;
  const int64_t b = blockIdx.y / a.Hkv, hk = blockIdx.y % a.Hkv, group = a.H / a.Hkv;
  const int r0 = blockIdx.z * ROWS, split = blockIdx.x;
  const T* kbase = static_cast<const T*>(a.k) + (b * a.Hkv + hk) * a.S * a.E;
  const T* vbase = static_cast<const T*>(a.v) + (b * a.Hkv + hk) * a.S * a.Ev;
  const bool k_lane = sub * kVec < a.E, v_lane = sub * kVec < a.Ev;

  // Per row: its query vector slice (pre-scaled), mask row, and last visible key.
  float q[ROWS][kVec];
  int64_t mask_row[ROWS], last_key[ROWS], out_row[ROWS];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const bool valid = r0 + r < a.rows;
    const int64_t h = hk * group + (valid ? (r0 + r) / a.L : 0), i = valid ? (r0 + r) % a.L : 0;
    out_row[r] = (b * a.H + h) * a.L + i;
    mask_row[r] = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2];
    last_key[r] = !valid ? -1 : a.causal ? i + a.S - a.L : a.S - 1;
    if (valid && k_lane) {
      load_vec(static_cast<const T*>(a.q) + out_row[r] * a.E + sub * kVec, q[r]);
    } else {
#pragma unroll
      for (int t = 0; t < kVec; ++t) q[r][t] = 0.f;
    }
#pragma unroll
    for (int t = 0; t < kVec; ++t) q[r][t] *= a.scale_log2;
  }
  if (threadIdx.x < ROWS) { row_max[threadIdx.x] = -INFINITY; row_sum[threadIdx.x] = 0.f; }
  float acc[ROWS][kVec];
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int t = 0; t < kVec; ++t) acc[r][t] = 0.f;

  const int64_t tiles_per_split = ((a.S + kTileKeys - 1) / kTileKeys - split + a.splits - 1) / a.splits;
  const int64_t chunks = (tiles_per_split + kChunkTiles - 1) / kChunkTiles;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    // The last chunk may hold fewer tiles; a multiple of 64 keeps every warp's loop trip count
    // uniform (its lane groups' slots are aligned), as the shuffles need.
    const int64_t tiles_left = tiles_per_split - ch * kChunkTiles;
    const int chunk_keys = tiles_left < kChunkTiles ? static_cast<int>(tiles_left) * kTileKeys : kChunk;
    // 1. Scores of this chunk's keys for every row (-inf where the row does not see the key).
    for (int c0 = slot; c0 < chunk_keys; c0 += slots * kUnroll) {
      float kv[kUnroll][kVec];
      bool seen[kUnroll][ROWS], any[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * slots;
        const int64_t j = c < chunk_keys ? key_of(a, split, ch, c) : -1;
        any[u] = false;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          bool s = j >= 0 && j <= last_key[r];
          if (s && a.mask.data && a.mask.dtype == DType::Bool) {
            s = static_cast<const uint8_t*>(a.mask.data)[mask_row[r] + j * a.mask.strides[3]] != 0;
          }
          seen[u][r] = s;
          any[u] |= s;
        }
        if (any[u] && k_lane) {
          load_vec(kbase + j * a.E + sub * kVec, kv[u]);
        } else {
#pragma unroll
          for (int t = 0; t < kVec; ++t) kv[u][t] = 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * slots;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          float dot = 0.f;
#pragma unroll
          for (int t = 0; t < kVec; ++t) dot += q[r][t] * kv[u][t];
          for (int off = a.lanes / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
          if (sub == 0 && c < chunk_keys) {
            const int64_t j = key_of(a, split, ch, c);
            if (seen[u][r] && a.mask.data && a.mask.dtype != DType::Bool) {
              dot += kLog2e * load_as<float>(a.mask.data, a.mask.dtype, mask_row[r] + j * a.mask.strides[3]);
            }
            scores[r][c] = seen[u][r] ? dot : -INFINITY;
          }
        }
      }
    }
    __syncthreads();
    // 2. Online softmax update per row: warp w owns rows w, w + kWarps, ...
    for (int r = warp; r < ROWS; r += kWarps) {
      float m = -INFINITY;
      for (int c = lane; c < chunk_keys; c += 32) m = fmaxf(m, scores[r][c]);
      m = fmaxf(warp_reduce(m, MaxOp()), row_max[r]);
      float s = 0.f;
      for (int c = lane; c < chunk_keys; c += 32) {
        const float p = m == -INFINITY ? 0.f : exp2f(scores[r][c] - m);
        scores[r][c] = p;
        s += p;
      }
      s = warp_reduce(s, SumOp());
      if (lane == 0) {
        const float corr = row_max[r] == -INFINITY ? 0.f : exp2f(row_max[r] - m);
        row_corr[r] = corr;
        row_sum[r] = row_sum[r] * corr + s;
        row_max[r] = m;
      }
    }
    __syncthreads();
    // 3. acc += p V over the chunk; keys every row gives zero weight are not loaded.
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int t = 0; t < kVec; ++t) acc[r][t] *= row_corr[r];
    for (int c0 = slot; c0 < chunk_keys; c0 += slots * kUnroll) {
      float vv[kUnroll][kVec];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * slots;
        bool any = false;
        if (c < chunk_keys) {
#pragma unroll
          for (int r = 0; r < ROWS; ++r) any |= scores[r][c] != 0.f;
        }
        if (any && v_lane) {
          load_vec(vbase + key_of(a, split, ch, c) * a.Ev + sub * kVec, vv[u]);
        } else {
#pragma unroll
          for (int t = 0; t < kVec; ++t) vv[u][t] = 0.f;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + u * slots;
        if (c >= chunk_keys) continue;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          const float p = scores[r][c];
#pragma unroll
          for (int t = 0; t < kVec; ++t) acc[r][t] += p * vv[u][t];
        }
      }
    }
    __syncthreads();  // scores is rewritten by the next chunk
  }

  // 4. Sum the lane groups: inside a warp by shuffles, across warps through shared memory.
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int t = 0; t < kVec; ++t)
      for (int off = a.lanes; off < 32; off <<= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], off);
  if (lane < a.lanes && v_lane) {
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int t = 0; t < kVec; ++t) partial_out[warp][r][sub * kVec + t] = acc[r][t];
  }
  __syncthreads();
  for (int x = threadIdx.x; x < ROWS * a.Ev; x += blockDim.x) {
    const int r = x / a.Ev, d = x % a.Ev;
    if (r0 + r >= a.rows) break;
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) o += partial_out[w][r][d];
    int64_t row = 0;
#pragma unroll
    for (int rr = 0; rr < ROWS; ++rr) row = rr == r ? out_row[rr] : row;  // no dynamic register index
    if (a.splits > 1) {
      float* part = a.partial + (row * a.splits + split) * (a.Ev + 2);
      part[d] = o;
      if (d == 0) { part[a.Ev] = row_max[r] / kLog2e; part[a.Ev + 1] = row_sum[r]; }
    } else {
      store_from<float>(a.out, a.dtype, row * a.Ev + d, row_sum[r] > 0.f ? o / row_sum[r] : 0.f);
    }
  }
}

template <class T>
void launch(int rows_per_block, dim3 grid, const DecodeArgs& a, cudaStream_t stream) {
  switch (rows_per_block) {
    case 1: sdpa_decode_kernel<T, 1><<<grid, kWarps * 32, 0, stream>>>(a); break;
    case 2: sdpa_decode_kernel<T, 2><<<grid, kWarps * 32, 0, stream>>>(a); break;
    case 4: sdpa_decode_kernel<T, 4><<<grid, kWarps * 32, 0, stream>>>(a); break;
    default: sdpa_decode_kernel<T, 8><<<grid, kWarps * 32, 0, stream>>>(a); break;
  }
}

}  // namespace

Status sdpa_decode(const Context& c, const Node& n, const SdpaParams& p, bool* handled) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &out = n.out;
  *handled = false;
  DecodeArgs a{};
  a.H = q.shape[1]; a.L = q.shape[2]; a.E = q.shape[3];
  a.Hkv = k.shape[1]; a.S = k.shape[2]; a.Ev = v.shape[3];
  const int64_t B = q.shape[0], vec = 16 / static_cast<int64_t>(dtype_size(q.dtype));
  const int64_t widest = a.E > a.Ev ? a.E : a.Ev;
  if (a.L > kDecodeMaxQueries || a.E % vec || a.Ev % vec || widest > kMaxDim || widest / vec > 32 ||
      !aligned16(q.data) || !aligned16(k.data) || !aligned16(v.data)) {
    return Status::ok();
  }
  a.q = q.data; a.k = k.data; a.v = v.data; a.out = out.data;
  a.dtype = q.dtype;
  a.causal = p.causal;
  a.scale_log2 = sdpa_scale_log2(p, a.E);
  a.mask = sdpa_mask(n, p);
  a.lanes = 1;
  while (a.lanes * vec < widest) a.lanes *= 2;
  a.rows = static_cast<int>(a.H / a.Hkv * a.L);
  const int rows_per_block = a.rows <= 1 ? 1 : a.rows <= 2 ? 2 : a.rows <= 4 ? 4 : kMaxRows;
  const int64_t row_blocks = (a.rows + rows_per_block - 1) / rows_per_block;
  const int64_t heads = B * a.Hkv;
  if (heads > 65535 || row_blocks > 65535) return Status::ok();
  // Enough splits for ~2 blocks per multiprocessor, at most one per tile, within the scratch.
  const int64_t tiles = (a.S + kTileKeys - 1) / kTileKeys, blocks = heads * row_blocks;
  int64_t splits = std::min<int64_t>(tiles, (2 * c.num_sms + blocks - 1) / blocks);
  const int64_t per_split = B * a.H * a.L * (a.Ev + 2);
  splits = std::min<int64_t>(splits, static_cast<int64_t>(c.attn_scratch_floats) / per_split);
  a.splits = static_cast<int>(std::max<int64_t>(std::min<int64_t>(splits, 65535), 1));
  a.partial = a.splits > 1 ? c.attn_scratch : nullptr;
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(heads), static_cast<unsigned>(row_blocks));
  switch (q.dtype) {
    case DType::F32: launch<float>(rows_per_block, grid, a, c.stream); break;
    case DType::F16: launch<__half>(rows_per_block, grid, a, c.stream); break;
    case DType::BF16: launch<__nv_bfloat16>(rows_per_block, grid, a, c.stream); break;
    default: return Status::ok();
  }
  ETGPU_CUDA_LAUNCH_CHECK("sdpa decode kernel");
  if (a.splits > 1) {
    ETGPU_RETURN_IF_ERROR(sdpa_merge(c, a.partial, out, B * a.H * a.L, a.splits, a.Ev));
  }
  *handled = true;
  return Status::ok();
}

}  // namespace etgpu::cuda
