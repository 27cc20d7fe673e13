// Prefill attention on the tensor cores (flash-attention 2 style, WMMA 16x16x16, fp32
// accumulation) for fp16/bf16 with E = Ev in {64, 128} and more than kDecodeMaxQueries query rows.
// attention.cu's generic kernel computes on fp32 FMAs (18 ms for causal 2048 x 2048, H32 E128).
//
// A block owns 64 query rows of one head (16 per warp) and walks the keys in tiles of 64: K and V
// tiles are staged in shared memory with 16-byte loads; each warp computes its 16 x 64 scores
// with WMMA, applies scale, mask and the causal bound, updates its rows' online softmax (two lanes
// per row) and writes P (in the input dtype, as flash attention does) back to shared memory; then
// O += P V with WMMA. WMMA accumulators hide which lane holds which row, so O lives in shared
// memory (fp32) and is loaded, rescaled by the softmax correction and stored around each P V.
// Causal blocks stop at their last visible key.
#include <mma.h>

#include "engine/cuda/attention.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

using namespace nvcuda;

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps;  // query rows per block
constexpr int kKeys = 64;           // keys per tile

struct PrefillArgs {
  const void *q, *k, *v;
  void* out;
  int64_t H, Hkv, L, S;
  SdpaMask mask;
  float scale_log2;
  bool causal;
};

// Shared-memory layout (padded rows keep WMMA's 32-byte fragment alignment and spread banks).
template <class T, int E>
struct Layout {
  static constexpr int kLdT = E + 8;        // q, k, v tiles (T)
  static constexpr int kLdS = kKeys + 4;    // scores (float)
  static constexpr int kLdP = kKeys + 8;    // probabilities (T)
  static constexpr int kLdO = E + 4;        // output accumulator (float)
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(T) * kRows * kLdT;
  static constexpr size_t kV = kK + sizeof(T) * kKeys * kLdT;
  static constexpr size_t kS = kV + sizeof(T) * kKeys * kLdT;
  static constexpr size_t kP = kS + sizeof(float) * kRows * kLdS;
  static constexpr size_t kO = kP + sizeof(T) * kRows * kLdP;
  static constexpr size_t kCorr = kO + sizeof(float) * kRows * kLdO;
  static constexpr size_t kBytes = kCorr + sizeof(float) * kRows;
};

// Copies `rows` rows of E elements (row stride E) into a padded tile; rows past `valid` are zero.
template <class T, int E>
__device__ void load_tile(T* dst, const T* src, int rows, int64_t valid) {
  constexpr int kVec = 16 / sizeof(T), kPerRow = E / kVec;
  for (int x = threadIdx.x; x < rows * kPerRow; x += blockDim.x) {
    const int r = x / kPerRow, c = (x % kPerRow) * kVec;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (r < valid) value = *reinterpret_cast<const uint4*>(src + int64_t(r) * E + c);
    *reinterpret_cast<uint4*>(dst + r * Layout<T, E>::kLdT + c) = value;
  }
}

template <class T, int E>
__global__ void __launch_bounds__(kWarps * 32) sdpa_prefill_kernel(PrefillArgs a) {
  using Lay = Layout<T, E>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + Lay::kQ);
  T* ks = reinterpret_cast<T*>(smem + Lay::kK);
  T* vs = reinterpret_cast<T*>(smem + Lay::kV);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* ss = reinterpret_cast<float*>(smem + Lay::kS) + warp * 16 * Lay::kLdS;
  T* ps = reinterpret_cast<T*>(smem + Lay::kP) + warp * 16 * Lay::kLdP;
  float* os = reinterpret_cast<float*>(smem + Lay::kO) + warp * 16 * Lay::kLdO;
  float* corr_s = reinterpret_cast<float*>(smem + Lay::kCorr) + warp * 16;

  const int64_t bh = blockIdx.y, b = bh / a.H, h = bh % a.H, hk = h / (a.H / a.Hkv);
  const int64_t q0 = int64_t(blockIdx.x) * kRows;
  const T* kbase = static_cast<const T*>(a.k) + (b * a.Hkv + hk) * a.S * E;
  const T* vbase = static_cast<const T*>(a.v) + (b * a.Hkv + hk) * a.S * E;
  load_tile<T, E>(qs, static_cast<const T*>(a.q) + (bh * a.L + q0) * E, kRows, a.L - q0);
  for (int x = lane; x < 16 * Lay::kLdO; x += 32) os[x] = 0.f;

  // Two lanes per row: lane owns row r and the columns of parity `half`.
  const int r = lane >> 1, half = lane & 1;
  const int64_t i = q0 + warp * 16 + r;
  const int64_t last = a.causal ? i + a.S - a.L : a.S - 1;  // last key row i sees
  const int64_t mask_row = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2];
  float m = -INFINITY, l = 0.f;
  int64_t key_end = a.S;
  if (a.causal) {
    const int64_t block_last = q0 + kRows - 1 + a.S - a.L + 1;
    if (block_last < key_end) key_end = block_last > 0 ? block_last : 0;
  }

  for (int64_t k0 = 0; k0 < key_end; k0 += kKeys) {
    __syncthreads();  // previous K/V tiles fully read (and q loaded, first time round)
    load_tile<T, E>(ks, kbase + k0 * E, kKeys, a.S - k0);
    load_tile<T, E>(vs, vbase + k0 * E, kKeys, a.S - k0);
    __syncthreads();
    // Scores: [16 rows of this warp] x [64 keys].
    for (int n = 0; n < kKeys / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < E / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, qs + warp * 16 * Lay::kLdT + kk * 16, Lay::kLdT);
        wmma::load_matrix_sync(fb, ks + n * 16 * Lay::kLdT + kk * 16, Lay::kLdT);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(ss + n * 16, acc, Lay::kLdS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax of row r over this tile (exp2 domain).
    float s[kKeys / 2];
    float tile_max = -INFINITY;
#pragma unroll
    for (int t = 0; t < kKeys / 2; ++t) {
      const int c = half + 2 * t;
      const int64_t j = k0 + c;
      float v = -INFINITY;
      if (i < a.L && j <= last) {
        v = ss[r * Lay::kLdS + c] * a.scale_log2;
        if (a.mask.data) {
          const int64_t mo = mask_row + j * a.mask.strides[3];
          if (a.mask.dtype == DType::Bool) {
            if (!static_cast<const uint8_t*>(a.mask.data)[mo]) v = -INFINITY;
          } else {
            v += kLog2e * load_as<float>(a.mask.data, a.mask.dtype, mo);
          }
        }
      }
      s[t] = v;
      tile_max = fmaxf(tile_max, v);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float corr = m == -INFINITY ? 0.f : exp2f(m - m_new);
    float sum = 0.f;
#pragma unroll
    for (int t = 0; t < kKeys / 2; ++t) {
      const float p = s[t] == -INFINITY ? 0.f : exp2f(s[t] - m_new);
      sum += p;
      ps[r * Lay::kLdP + half + 2 * t] = static_cast<T>(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * corr + sum;
    m = m_new;
    if (half == 0) corr_s[r] = corr;
    __syncwarp();
    for (int x = lane; x < 16 * E; x += 32) os[(x / E) * Lay::kLdO + x % E] *= corr_s[x / E];
    __syncwarp();
    // O[16 x E] += P[16 x 64] V[64 x E].
    for (int n = 0; n < E / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, os + n * 16, Lay::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, ps + kk * 16, Lay::kLdP);
        wmma::load_matrix_sync(fb, vs + kk * 16 * Lay::kLdT + n * 16, Lay::kLdT);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(os + n * 16, acc, Lay::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncwarp();
  if (i >= a.L) return;
  const float inv = l > 0.f ? 1.f / l : 0.f;
  T* out = static_cast<T*>(a.out) + (bh * a.L + i) * E;
  for (int d = half; d < E; d += 2) out[d] = static_cast<T>(os[r * Lay::kLdO + d] * inv);
}

template <class T, int E>
Status launch(const PrefillArgs& a, int64_t bh, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.L + kRows - 1) / kRows), static_cast<unsigned>(bh));
  sdpa_prefill_kernel<T, E><<<grid, kWarps * 32, Layout<T, E>::kBytes, stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("sdpa prefill kernel");
  return Status::ok();
}

template <class T, int E>
Status allow_shared() {
  ETGPU_CUDA_CHECK(cudaFuncSetAttribute(sdpa_prefill_kernel<T, E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(Layout<T, E>::kBytes)));
  return Status::ok();
}

}  // namespace

Status sdpa_prefill_init() {
  ETGPU_RETURN_IF_ERROR((allow_shared<__half, 64>()));
  ETGPU_RETURN_IF_ERROR((allow_shared<__half, 128>()));
  ETGPU_RETURN_IF_ERROR((allow_shared<__nv_bfloat16, 64>()));
  return allow_shared<__nv_bfloat16, 128>();
}

Status sdpa_prefill(const Context& c, const Node& n, const SdpaParams& p, bool* handled) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &out = n.out;
  *handled = false;
  const int64_t E = q.shape[3];
  const bool half_type = q.dtype == DType::F16 || q.dtype == DType::BF16;
  if (!half_type || (E != 64 && E != 128) || v.shape[3] != E || q.shape[2] <= kDecodeMaxQueries ||
      q.shape[0] * q.shape[1] > 65535 || !aligned16(q.data) || !aligned16(k.data) || !aligned16(v.data) ||
      !aligned16(out.data)) {
    return Status::ok();
  }
  PrefillArgs a{};
  a.q = q.data; a.k = k.data; a.v = v.data; a.out = out.data;
  a.H = q.shape[1]; a.L = q.shape[2]; a.Hkv = k.shape[1]; a.S = k.shape[2];
  a.causal = p.causal;
  a.scale_log2 = sdpa_scale_log2(p, E);
  a.mask = sdpa_mask(n, p);
  const int64_t bh = q.shape[0] * a.H;
  *handled = true;
  if (q.dtype == DType::F16) return E == 64 ? launch<__half, 64>(a, bh, c.stream) : launch<__half, 128>(a, bh, c.stream);
  return E == 64 ? launch<__nv_bfloat16, 64>(a, bh, c.stream) : launch<__nv_bfloat16, 128>(a, bh, c.stream);
}

}  // namespace etgpu::cuda
