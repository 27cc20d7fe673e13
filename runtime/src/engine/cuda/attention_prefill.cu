// Prefill attention on the tensor cores, FlashAttention-2 style, for fp16/bf16 with E = Ev in
// {64, 128} and more than kDecodeMaxQueries query rows (fp32 accumulation, output in the input dtype).
//
// A block owns kRows query rows of one head, 16 per warp, and walks the keys in tiles of 64. K/V
// tiles are double-buffered in shared memory with cp.async, so tile t+1 streams in while tile t is
// computed. Everything per row stays in registers: each warp keeps its Q fragments for the whole
// key loop, computes S = Q K^T with mma.sync m16n8k16 (ldmatrix operands), runs the online softmax
// on the accumulator fragments (a thread holds rows g and g+8 of its warp's 16, g = lane / 4, and
// the four lanes of a quad share a row, so row max/sum are two xor-shuffles), converts P to A
// fragments in place (the m16n8k16 C layout of two adjacent 8-key tiles is exactly the A layout of
// one 16-key step), and accumulates O += P V with V read by ldmatrix.trans. O is rescaled in
// registers and written once at the end. Causal blocks stop at their last visible key; only tiles
// that cross the causal diagonal, the end of the keys, or carry a mask pay the per-element checks,
// and a warp skips the math of a tile in which a bool mask or the bounds hide all its scores.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/attention.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

constexpr int kKeys = 64;  // keys per tile

template <int E>
struct Cfg {
  // 4 warps (64 rows). 8 warps for E = 64 would halve K/V traffic per row, but capping registers
  // at 128 for two such blocks per SM spilled; at ~145 registers, 4-warp blocks fit 3 per SM
  // (E = 128: ~230 registers, 2 per SM).
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRows = 16 * kWarps;
  // Rows padded by 16 bytes: the 8 row addresses of one ldmatrix phase then fall in 8 distinct
  // 16-byte bank groups (row stride = 16 mod 128 bytes), so ldmatrix is conflict-free.
  static constexpr int kLd = E + 8;
  static constexpr int kTile = kKeys * kLd;  // one K or V tile, elements
  static constexpr size_t kBytes = sizeof(uint16_t) * (size_t(kRows) * kLd + 4 * size_t(kTile));
};

struct PrefillArgs {
  const void *q, *k, *v;
  void* out;
  int64_t H, Hkv;
  int L, S;  // row and key indices fit in int (checked at launch); int keeps register pressure down
  SdpaMask mask;
  SeqMajorRows<int64_t> out_rows;  // where output row bh * L + i is stored
  float scale_log2;
  bool causal;
  bool mask_pairs;  // bool mask whose key pairs (2c, 2c+1) are adjacent, 2-byte aligned bytes
};

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a b for one m16n8k16 step (a: 16x16 row-major, b: 16x8 col-major, fp32 accumulators).
template <class T>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                   uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one register of two T (lo in the low half, as the mma fragments expect).
template <class T>
__device__ __forceinline__ uint32_t pack(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Starts the async copy of `rows` rows of E elements (row stride E in global memory) into a padded
// shared tile; rows at or past `valid` are zero-filled.
template <class T, int E>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int rows, int64_t valid) {
  using C = Cfg<E>;
  constexpr int kPerRow = E / 8;  // 16-byte chunks per row
  const int chunks = rows * kPerRow;
#pragma unroll 4
  for (int x = threadIdx.x; x < chunks; x += C::kThreads) {
    const int r = x / kPerRow, c = (x % kPerRow) * 8;
    const bool ok = r < valid;
    cp_async<16>(smem_addr(dst + r * C::kLd + c), ok ? src + int64_t(r) * E + c : src, ok);
  }
}

// Bit nt * 4 + e set when this thread's score element e of key tile nt (its C-fragment layout) is
// visible: key inside S, not past the causal bound and, for a bool mask, kept. A float mask is
// added to the scores later. Rows past L read no mask (their output is never written).
__device__ __forceinline__ uint32_t visible_bits(const PrefillArgs& a, int k0, int row0, int64_t mrow0,
                                                 int64_t mrow1, int c4) {
  const bool bool_mask = a.mask.data != nullptr && a.mask.dtype == DType::Bool;
  const uint8_t* mask = static_cast<const uint8_t*>(a.mask.data);
  const int diag = a.S - a.L;
  uint32_t bits = 0;
#pragma unroll
  for (int nt = 0; nt < kKeys / 8; ++nt) {
    const int j = k0 + nt * 8 + 2 * c4;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = row0 + 8 * r;
      bool v0 = j < a.S && !(a.causal && j > i + diag);
      bool v1 = j + 1 < a.S && !(a.causal && j + 1 > i + diag);
      if (bool_mask && i < a.L && (v0 || v1)) {
        const int64_t mo = (r ? mrow1 : mrow0) + int64_t(j) * a.mask.strides[3];
        if (a.mask_pairs && v1) {
          const uint16_t pair = *reinterpret_cast<const uint16_t*>(mask + mo);
          v0 = v0 && (pair & 0xffu);
          v1 = pair >> 8;
        } else {
          v0 = v0 && mask[mo];
          v1 = v1 && mask[mo + a.mask.strides[3]];
        }
      }
      bits |= (uint32_t(v0) << (nt * 4 + 2 * r)) | (uint32_t(v1) << (nt * 4 + 2 * r + 1));
    }
  }
  return bits;
}

template <class T, int E>
__global__ void __launch_bounds__(Cfg<E>::kThreads) sdpa_prefill_kernel(PrefillArgs a) {
  using C = Cfg<E>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem);
  T* ks = qs + C::kRows * C::kLd;  // two K buffers
  T* vs = ks + 2 * C::kTile;       // two V buffers
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c4 = lane & 3;

  const int64_t bh = blockIdx.y, b = bh / a.H, h = bh % a.H, hk = h / (a.H / a.Hkv);
  // Reverse order: under a causal bound the last query tiles do the most work, so start them first.
  const int q0 = int(gridDim.x - 1 - blockIdx.x) * C::kRows;
  const T* kbase = static_cast<const T*>(a.k) + (b * a.Hkv + hk) * a.S * E;
  const T* vbase = static_cast<const T*>(a.v) + (b * a.Hkv + hk) * a.S * E;
  const int diag = a.S - a.L;  // causal (bottom-right): row i sees keys j <= i + diag
  int key_end = a.S;
  if (a.causal) {
    const int block_end = q0 + C::kRows + diag;  // one past the block's last visible key
    key_end = block_end < key_end ? (block_end > 0 ? block_end : 0) : key_end;
  }
  const int n_tiles = (key_end + kKeys - 1) / kKeys;

  load_rows<T, E>(qs, static_cast<const T*>(a.q) + (bh * a.L + q0) * int64_t(E), C::kRows, a.L - q0);
  if (n_tiles > 0) {
    load_rows<T, E>(ks, kbase, kKeys, a.S);
    load_rows<T, E>(vs, vbase, kKeys, a.S);
  }
  cp_async_commit();

  const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;  // this thread's two rows
  int64_t mrow0 = 0, mrow1 = 0;
  if (a.mask.data) {
    const int64_t base = b * a.mask.strides[0] + h * a.mask.strides[1];
    mrow0 = base + int64_t(row0) * a.mask.strides[2];
    mrow1 = base + int64_t(row1) * a.mask.strides[2];
  }

  uint32_t qf[E / 16][4];  // Q A-fragments, one per 16-dim step, kept for the whole key loop
  float o[E / 8][4];       // O accumulators: 8-dim tile d holds (row0, 8d+2c4..+1), (row1, ...)
#pragma unroll
  for (int d = 0; d < E / 8; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max (exp2 domain)
  float l[2] = {0.f, 0.f};              // this thread's share of the row sums; quad-reduced at the end

  for (int t = 0; t < n_tiles; ++t) {
    const int k0 = t * kKeys;
    const int buf = t & 1;
    if (t + 1 < n_tiles) {
      // The other buffer was released by the barrier that ended iteration t - 1.
      load_rows<T, E>(ks + (buf ^ 1) * C::kTile, kbase + int64_t(k0 + kKeys) * E, kKeys, a.S - k0 - kKeys);
      load_rows<T, E>(vs + (buf ^ 1) * C::kTile, vbase + int64_t(k0 + kKeys) * E, kKeys, a.S - k0 - kKeys);
      cp_async_commit();
      cp_async_wait<1>();  // everything but the group just issued has landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (t == 0) {
#pragma unroll
      for (int kk = 0; kk < E / 16; ++kk)
        ldmatrix_x4(qf[kk], smem_addr(qs + (warp * 16 + (lane & 15)) * C::kLd + kk * 16 + (lane >> 4) * 8));
    }
    const T* kt = ks + buf * C::kTile;
    const T* vt = vs + buf * C::kTile;

    // Per-element bounds and mask only where the tile needs them (block-uniform test: the block's
    // first row is the most restricted by the causal bound). A warp none of whose scores is
    // visible skips the tile: with a bool causal mask (the LLM prefill) that is the half of the
    // tiles above the diagonal, and the unused tail of a static KV cache.
    const bool edge = k0 + kKeys > a.S || a.mask.data != nullptr || (a.causal && k0 + kKeys - 1 > q0 + diag);
    const uint32_t keep = edge ? visible_bits(a, k0, row0, mrow0, mrow1, c4) : 0xffffffffu;
    if (__any_sync(0xffffffffu, keep != 0)) {
      // S[16 x 64] = Q K^T. One ldmatrix.x4 gives the B fragments of 8 keys x 32 dims (two k-steps):
      // lane l addresses key (l & 7) at dim offset (l >> 3) * 8.
      float s[kKeys / 8][4];
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < E / 16; kk += 2) {
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; ++nt) {
          uint32_t kb[4];
          ldmatrix_x4(kb, smem_addr(kt + (nt * 8 + (lane & 7)) * C::kLd + kk * 16 + (lane >> 3) * 8));
          mma<T>(s[nt], qf[kk], kb[0], kb[1]);
          mma<T>(s[nt], qf[kk + 1], kb[2], kb[3]);
        }
      }

      // Scale into the exp2 domain; hidden scores -> -inf; a float mask is added (times log2 e).
      const bool float_mask = a.mask.data != nullptr && a.mask.dtype != DType::Bool;
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float v = s[nt][e] * a.scale_log2;
          if (!(keep >> (nt * 4 + e) & 1u)) {
            v = -INFINITY;
          } else if (float_mask) {
            const int i = e < 2 ? row0 : row1;
            const int j = k0 + nt * 8 + 2 * c4 + (e & 1);
            const int64_t mo = (e < 2 ? mrow0 : mrow1) + int64_t(j) * a.mask.strides[3];
            if (i < a.L) v += kLog2e * load_as<float>(a.mask.data, a.mask.dtype, mo);
          }
          s[nt][e] = v;
        }
      }

      // Online softmax on the fragments: rows row0 (elements 0, 1) and row1 (elements 2, 3).
      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
      }
      float corr[2], base[2], rs[2] = {0.f, 0.f};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        // A row that has seen only -inf keeps max -inf; subtracting 0 instead keeps exp2 at 0, not NaN.
        base[r] = mx[r] == -INFINITY ? 0.f : mx[r];
        corr[r] = exp2f(m[r] - base[r]);
        m[r] = mx[r];
      }
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
        s[nt][0] = exp2f(s[nt][0] - base[0]);
        s[nt][1] = exp2f(s[nt][1] - base[0]);
        s[nt][2] = exp2f(s[nt][2] - base[1]);
        s[nt][3] = exp2f(s[nt][3] - base[1]);
        rs[0] += s[nt][0] + s[nt][1];
        rs[1] += s[nt][2] + s[nt][3];
      }
      l[0] = l[0] * corr[0] + rs[0];
      l[1] = l[1] * corr[1] + rs[1];
#pragma unroll
      for (int d = 0; d < E / 8; ++d) {
        o[d][0] *= corr[0];
        o[d][1] *= corr[0];
        o[d][2] *= corr[1];
        o[d][3] *= corr[1];
      }

      // O[16 x E] += P[16 x 64] V[64 x E], 16 keys per step. P's A fragment for keys 16kk.. is the
      // C fragments of key tiles 2kk and 2kk+1. ldmatrix.x4.trans over V rows (keys) gives the B
      // fragments of 16 keys x 16 dims: lane l addresses key (l & 15) at dim offset (l >> 4) * 8.
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t pa[4] = {pack<T>(s[2 * kk][0], s[2 * kk][1]), pack<T>(s[2 * kk][2], s[2 * kk][3]),
                                pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dt = 0; dt < E / 16; ++dt) {
          uint32_t vb[4];
          ldmatrix_x4_trans(vb, smem_addr(vt + (kk * 16 + (lane & 15)) * C::kLd + dt * 16 + (lane >> 4) * 8));
          mma<T>(o[2 * dt], pa, vb[0], vb[1]);
          mma<T>(o[2 * dt + 1], pa, vb[2], vb[3]);
        }
      }
    }  // visible tile
    __syncthreads();  // this buffer is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();  // no copy may still be in flight at exit (n_tiles == 0 leaves the Q group)

  // Rows that saw no key have l == 0 and give zeros.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = l[r] > 0.f ? 1.f / l[r] : 0.f;
  }
  T* out = static_cast<T*>(a.out);
  T* out0 = out + a.out_rows.row(bh * a.L + row0) * E;
  T* out1 = out + a.out_rows.row(bh * a.L + row1) * E;
#pragma unroll
  for (int d = 0; d < E / 8; ++d) {
    const int col = d * 8 + 2 * c4;
    if (row0 < a.L) *reinterpret_cast<uint32_t*>(out0 + col) = pack<T>(o[d][0] * inv[0], o[d][1] * inv[0]);
    if (row1 < a.L) *reinterpret_cast<uint32_t*>(out1 + col) = pack<T>(o[d][2] * inv[1], o[d][3] * inv[1]);
  }
}

template <class T, int E>
Status launch(const PrefillArgs& a, int64_t bh, cudaStream_t stream) {
  using C = Cfg<E>;
  const dim3 grid(static_cast<unsigned>((a.L + C::kRows - 1) / C::kRows), static_cast<unsigned>(bh));
  sdpa_prefill_kernel<T, E><<<grid, C::kThreads, C::kBytes, stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("sdpa prefill kernel");
  return Status::ok();
}

template <class T, int E>
Status allow_shared() {
  ETGPU_CUDA_CHECK(cudaFuncSetAttribute(sdpa_prefill_kernel<T, E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(Cfg<E>::kBytes)));
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
      q.shape[0] * q.shape[1] > 65535 || q.shape[2] > (1 << 30) || k.shape[2] > (1 << 30) || !aligned16(q.data) ||
      !aligned16(k.data) || !aligned16(v.data) || !aligned16(out.data)) {
    return Status::ok();
  }
  PrefillArgs a{};
  a.q = q.data; a.k = k.data; a.v = v.data; a.out = out.data;
  a.H = q.shape[1]; a.Hkv = k.shape[1];
  a.L = static_cast<int>(q.shape[2]); a.S = static_cast<int>(k.shape[2]);
  a.causal = p.causal;
  a.scale_log2 = sdpa_scale_log2(p, E);
  a.mask = sdpa_mask(n, p);
  a.out_rows = sdpa_out_rows<int64_t>(n, p);
  const int64_t* ms = a.mask.strides;
  a.mask_pairs = a.mask.data != nullptr && a.mask.dtype == DType::Bool && ms[3] == 1 && ms[0] % 2 == 0 &&
                 ms[1] % 2 == 0 && ms[2] % 2 == 0 && reinterpret_cast<uintptr_t>(a.mask.data) % 2 == 0;
  const int64_t bh = q.shape[0] * a.H;
  *handled = true;
  if (q.dtype == DType::F16) return E == 64 ? launch<__half, 64>(a, bh, c.stream) : launch<__half, 128>(a, bh, c.stream);
  return E == 64 ? launch<__nv_bfloat16, 64>(a, bh, c.stream) : launch<__nv_bfloat16, 128>(a, bh, c.stream);
}

}  // namespace etgpu::cuda
