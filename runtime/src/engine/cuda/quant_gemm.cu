// Quantized GEMM for prefill (bf16/f16 x): out[m, n] = x[m, :] . dequant(W)[n, :] (+ bias[n]),
// with the weight decoded straight into tensor-core operands: no dequantized copy of W.
//
// A block (8 warps) computes a tile of 128 weight rows x kTileM rows of x (128; 64 for int2,
// whose steps are twice as long). K runs in steps of 16 code words per weight row (64 bytes:
// 64 K elements at int8, 128 at int4/nvfp4, 256 at int2):
//  - x's [kTileM x step] tile is copied to shared memory with cp.async, kStages steps ahead
//    (zero-filled past M and past K);
//  - each warp owns 16 weight rows. Lane (g, t) loads 16 bytes (4 words) of rows g and g + 8 at
//    word 4t of the step, plus the raw scales/zeros of the groups those words fall in, one step
//    ahead in registers (the GEMV's load pattern), and decodes each word once with quant.cuh's
//    WordDecoder into the A fragments of P/4 mma.sync m16n8k16 (fp32 accumulation);
//  - those fragments then meet every n8 block of the staged x: kTileM / 8 x P / 4 mmas per
//    decoded word, so decoding is amortised over the tile's x rows.
// Element order: the decoder pairs (e_j, e_{j+P/2}) (one lop3 per pair, quant.cuh); one prmt per
// pair restores natural pairs (e_2m, e_2m+1) so that x is used exactly as stored: mma q of a word
// takes elements 4q..4q+3 of it (k slots 2t, 2t+1 <- 4q, 4q+1 and 2t+8, 2t+9 <- 4q+2, 4q+3), and
// its B registers are x's 32-bit words 2q, 2q+1 of the same span.
// Shared layout of a step: units of U = min(16, 2P) bytes (the x elements one lane needs for one
// word, in V = 2P / U units), ordered [word i][unit v][x row r][lane t] with (r * 4 + t) XORed by
// a per-(i, v) constant: a warp's reads of one (i, v) are 32 consecutive units (conflict-free),
// and the cp.async writes, which walk a row of x in order for coalescing, spread over all banks.
// The weight tile is read from global memory once per block; blocks along M run next to each other
// (M is grid.x), so the other M tiles of a weight tile read it from L2.
#include <algorithm>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kTileN = kWarps * 16;  // weight rows per block
constexpr int kStepWords = 16;       // code words per weight row per step
constexpr int kStages = 3;           // x steps in shared memory (cp.async ring)

template <int kFmt>
struct GemmShape {
  static constexpr int kP = codes_per_word(kFmt);
  static constexpr int kTileM = kFmt == kInt2 ? 64 : 128;  // x rows per block
  static constexpr int kUnit = kP >= 8 ? 16 : 8;             // bytes per shared unit
  static constexpr int kUnits = 2 * kP / kUnit;              // units per (x row, word)
  static constexpr int kStageUnits = kTileM * kStepWords * kUnits;
  static constexpr int kStageBytes = kStageUnits * kUnit;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static constexpr int kGroups = kP / 4;  // most groups in a lane's 4 words (groups >= 16)
  // The XOR constant of (word i, unit v); see the header.
  __device__ static constexpr int swizzle(int i, int v) { return kP == 4 ? 4 * i : kP == 8 ? 2 * i : 2 * i + v; }
  // Unit index of (word i, unit v, x row r, lane t) within a stage.
  __device__ static constexpr int unit(int i, int v, int r, int t) {
    return (i * kUnits + v) * (kTileM * 4) + ((r * 4 + t) ^ swizzle(i, v));
  }
};

// One step's weight loads for a lane: 4 words of rows a and b, and their groups' raw parameters.
template <int kFmt>
struct GemmStep {
  uint4 a, b;
  RawGroup pa[GemmShape<kFmt>::kGroups], pb[GemmShape<kFmt>::kGroups];
};

struct GemmRows {
  const uint4 *a, *b;
  int64_t param_a, param_b;
  int groups;  // distinct groups in a lane's 4 words (uniform)
};

// Words past the row (a K tail) load as zero codes with zero parameters: they decode to exact 0.
template <int kFmt, class P>
__device__ __forceinline__ void load_gemm_step(GemmStep<kFmt>& d, const PackedWeight& w, const GemmRows& r, int word) {
  if (word < w.row_words) {
    d.a = __ldg(r.a + word / 4);
    d.b = __ldg(r.b + word / 4);
    const int64_t group = (int64_t(word) * codes_per_word(kFmt)) >> w.group_shift;
#pragma unroll
    for (int q = 0; q < GemmShape<kFmt>::kGroups; ++q) {
      if (q < r.groups) {
        d.pa[q] = load_raw_group<kFmt, P>(w, r.param_a + group + q);
        d.pb[q] = load_raw_group<kFmt, P>(w, r.param_b + group + q);
      }
    }
  } else {
    d.a = d.b = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int q = 0; q < GemmShape<kFmt>::kGroups; ++q) d.pa[q] = d.pb[q] = RawGroup{0, 0};
  }
}

// Issues the cp.asyncs of step s's x tile into stage buffer `stage` (a row of x in order per
// warp: coalesced reads; zero fill past M or the row's words).
template <int kFmt, class T>
__device__ __forceinline__ void stage_x_async(uint32_t stage, const T* x, const PackedWeight& w, int rows, int s) {
  using S = GemmShape<kFmt>;
  constexpr int kPerThread = S::kStageUnits / (kWarps * 32);
  static_assert(S::kStageUnits % (kWarps * 32) == 0);
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int u = threadIdx.x + j * kWarps * 32;
    const int v = u % S::kUnits, word = (u / S::kUnits) % kStepWords, r = u / (S::kUnits * kStepWords);
    const int64_t gword = int64_t(s) * kStepWords + word;
    const bool valid = r < rows && gword < w.row_words;
    const T* src = valid ? x + int64_t(r) * w.cols + gword * S::kP + v * (S::kUnit / 2) : x;
    cp_async<S::kUnit>(stage + S::unit(word & 3, v, r, word >> 2) * S::kUnit, src, valid);
  }
}

// Natural pairs of a word's P elements, from the decoder's (e_j, e_{j+P/2}) pairs:
// n[m] = (e_2m, e_2m+1).
template <int kFmt, class T>
__device__ __forceinline__ void decode_word(uint32_t* n, const WordDecoder<kFmt, T>& d, uint32_t word) {
  constexpr int kH = codes_per_word(kFmt) / 2;
#pragma unroll
  for (int j = 0; j < kH; j += 2) {
    const uint32_t lo = as_u32(d.pair(word, j)), hi = as_u32(d.pair(word, j + 1));
    n[j / 2] = __byte_perm(lo, hi, 0x5410);
    n[j / 2 + kH / 2] = __byte_perm(lo, hi, 0x7632);
  }
}

template <int kFmt, class T, class P>
__global__ void __launch_bounds__(kWarps * 32, 1)
    quant_gemm_kernel(PackedWeight w, const T* x, const T* bias, T* out, int m_total) {
  using S = GemmShape<kFmt>;
  constexpr int kP = S::kP, kNB = S::kTileM / 8;
  extern __shared__ uint4 x_smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n = w.rows, r0 = int64_t(blockIdx.y) * kTileN + warp * 16;
  const int m0 = blockIdx.x * S::kTileM, rows = min(S::kTileM, m_total - m0);
  x += int64_t(m0) * w.cols;
  // Weight rows past N read the last row (valid memory) and are not stored.
  const int64_t row_a = min(r0 + g, n - 1), row_b = min(r0 + g + 8, n - 1);
  const int quad_groups = max(1, (4 * kP) >> w.group_shift);
  const GemmRows wr{reinterpret_cast<const uint4*>(w.codes + row_a * w.row_words),
                    reinterpret_cast<const uint4*>(w.codes + row_b * w.row_words), row_a * w.groups,
                    row_b * w.groups, quad_groups};
  const int steps = static_cast<int>((w.row_words + kStepWords - 1) / kStepWords);
  const uint32_t smem = smem_addr(x_smem);

  // Weights first (no kernel writes them), then x once the previous grid is done.
  release_next_grid();
  GemmStep<kFmt> next;
  load_gemm_step<kFmt, P>(next, w, wr, t * 4);
  wait_previous_grid();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) stage_x_async<kFmt>(smem + s * S::kStageBytes, x, w, rows, s);
    cp_async_commit();
  }

  float acc[kNB][4];
#pragma unroll
  for (int b = 0; b < kNB; ++b) acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = 0.f;

  using Decoder = WordDecoder<kFmt, T>;
  const int lane_unit = 4 * g + t;
  for (int s = 0; s < steps; ++s) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // step s's x is visible, and every warp is done with step s - 1's buffer
    {
      const int fill = s + kStages - 1;
      if (fill < steps) stage_x_async<kFmt>(smem + (fill % kStages) * S::kStageBytes, x, w, rows, fill);
      cp_async_commit();
    }
    const GemmStep<kFmt> cur = next;
    if (s + 1 < steps) load_gemm_step<kFmt, P>(next, w, wr, (s + 1) * kStepWords + t * 4);

    const char* stage = reinterpret_cast<const char*>(x_smem) + (s % kStages) * S::kStageBytes;
    const uint32_t* ca = reinterpret_cast<const uint32_t*>(&cur.a);
    const uint32_t* cb = reinterpret_cast<const uint32_t*>(&cur.b);
    Decoder da(unpack_group<kFmt, P>(w, cur.pa[0])), db(unpack_group<kFmt, P>(w, cur.pb[0]));
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (S::kGroups > 1) {
        // A group starts at word i (groups are whole words, >= 16 elements; uniform branch).
        const int q = (i * kP) >> w.group_shift;
        if (i > 0 && q != (((i - 1) * kP) >> w.group_shift)) {
          RawGroup ra = cur.pa[0], rb = cur.pb[0];
#pragma unroll
          for (int k = 1; k < S::kGroups; ++k) {  // selects: a runtime index would go to local memory
            if (k == q) ra = cur.pa[k], rb = cur.pb[k];
          }
          da = Decoder(unpack_group<kFmt, P>(w, ra));
          db = Decoder(unpack_group<kFmt, P>(w, rb));
        }
      }
      uint32_t na[kP / 2], nb[kP / 2];
      decode_word<kFmt, T>(na, da, ca[i]);
      decode_word<kFmt, T>(nb, db, cb[i]);
#pragma unroll
      for (int b = 0; b < kNB; ++b) {
        uint32_t xb[kP / 2];
#pragma unroll
        for (int v = 0; v < S::kUnits; ++v) {
          // == S::unit(i, v, b * 8 + g, t): the swizzle only touches the low 4 bits.
          const char* p = stage + ((i * S::kUnits + v) * (S::kTileM * 4) + b * 32 + (lane_unit ^ S::swizzle(i, v))) *
                                      S::kUnit;
          if constexpr (S::kUnit == 16) *reinterpret_cast<uint4*>(xb + 4 * v) = *reinterpret_cast<const uint4*>(p);
          else *reinterpret_cast<uint2*>(xb) = *reinterpret_cast<const uint2*>(p);
        }
#pragma unroll
        for (int q = 0; q < kP / 4; ++q) {
          const uint32_t a[4] = {na[2 * q], nb[2 * q], na[2 * q + 1], nb[2 * q + 1]};
          mma_16816<T>(acc[b], a, xb + 2 * q);
        }
      }
    }
  }
  cp_async_wait<0>();

  // Accumulator fragment of block b: [0..1] = weight row g, x rows 8b + 2t, 8b + 2t + 1;
  // [2..3] = weight row g + 8.
  const int64_t na = r0 + g, nb = r0 + g + 8;
  const float bias_a = bias && na < n ? static_cast<float>(bias[na]) : 0.f;
  const float bias_b = bias && nb < n ? static_cast<float>(bias[nb]) : 0.f;
#pragma unroll
  for (int b = 0; b < kNB; ++b) {
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int m = b * 8 + 2 * t + c;
      if (m < rows) {
        T* o = out + (int64_t(m0) + m) * n;
        if (na < n) o[na] = static_cast<T>(acc[b][c] + bias_a);
        if (nb < n) o[nb] = static_cast<T>(acc[b][2 + c] + bias_b);
      }
    }
  }
}

template <int kFmt, class T, class P>
cudaError_t launch(const Context& c, const PackedWeight& w, const T* x, const T* bias, T* out, int m) {
  using S = GemmShape<kFmt>;
  if (const cudaError_t e = allow_dynamic_smem<quant_gemm_kernel<kFmt, T, P>>(S::kSmemBytes); e != cudaSuccess) {
    return e;
  }
  const dim3 grid(static_cast<unsigned>((m + S::kTileM - 1) / S::kTileM),
                  static_cast<unsigned>((w.rows + kTileN - 1) / kTileN));
  return launch_overlapped(quant_gemm_kernel<kFmt, T, P>, grid, dim3(kWarps * 32), S::kSmemBytes, c.stream, w, x,
                           bias, out, m);
}

}  // namespace

bool quant_gemm_kernel_supported(const PackedWeight& w, const TensorRef& x, int64_t m) {
  const int p = static_cast<int>(w.cols / std::max<int64_t>(w.row_words, 1));
  return (x.dtype == DType::BF16 || x.dtype == DType::F16) && m >= 1 && m <= (int64_t(1) << 30) &&
         w.row_words > 0 && w.row_words % 4 == 0 && w.row_words * p == w.cols &&
         (w.rows + kTileN - 1) / kTileN <= 65535 && reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
}

Status quant_gemm_tiled(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x,
                        DType dtype, const void* bias, void* out, int64_t m) {
  cudaError_t status = cudaSuccess;
  with_packed_types(p, dtype, w.param_dtype, [&](auto fmt, auto type, auto param) {
    using T = decltype(type);
    constexpr int kFmt = decltype(fmt)::value;
    status = launch<kFmt, T, decltype(param)>(c, w, static_cast<const T*>(x), static_cast<const T*>(bias),
                                              static_cast<T*>(out), static_cast<int>(m));
  });
  return cuda_status(status, "quant_gemm kernel");
}

}  // namespace etgpu::cuda
