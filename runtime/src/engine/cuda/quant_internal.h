// Host-side pieces shared by the quantized-linear files: quant.cu (entry points, GEMM path,
// embedding) and quant_gemv.cu (the decode GEMV).
#pragma once

#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

struct PackedWeight;

// x rows up to this many take the GEMV (8 per pass: the mma's 8 columns); more take the tiled
// GEMM (quant_gemm.cu) where it is faster (tiled_gemm_preferred), else dequantize + cuBLASLt. Each GEMV pass decodes the whole weight again (from L2), while the GEMM
// decodes a weight tile once per 64/128 x rows. (Chosen, not measured: the crossover was not
// timed when the GEMM was written.)
constexpr int64_t kMaxGemvRows = 64;

// The GEMV's tiles of weight rows (one per block), and how many one launch takes, all siblings
// together (grid.y's limit).
constexpr int kGemvTileRows = 16;
constexpr int64_t kMaxGemvTiles = 65535;
inline int64_t gemv_tiles(int64_t rows) { return (rows + kGemvTileRows - 1) / kGemvTileRows; }

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m);
// out[m, N] = x[m, K] . dequant(W)^T (+ bias), x/out/bias of `dtype` (bf16 or f16).
Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m);

// Weights that read one x (a layer's q/k/v, an MLP's gate/up) in one GEMV launch: the same
// format, group, zero domain, parameter dtype and K, each with its own rows, bias and output.
constexpr int kMaxGemvSiblings = 3;
struct GemvSibling {
  const PackedWeight* w;
  const void* bias;
  void* out;
};
// quant_gemv for each sibling, as one launch (the caller checks quant_gemv_supported for each,
// and that their tiles together stay within kMaxGemvTiles).
Status quant_gemv_siblings(const Context& c, const QuantWeightParams& p, const GemvSibling* siblings, int count,
                           const void* x, DType dtype, int64_t m);


// Whether the tiled GEMM (below) beats dequantize + cuBLASLt for m rows of x against an n-row
// weight. Measured on the H200 (bench/quant_gemv_bench, 2026-11-29, bench/NOTES.md): the tiled
// kernel (mma.sync, one block per SM, 128 weight rows per block) wins where the dequantize pass is
// slow (2-bit codes up to 512 rows: 0.11 vs 0.19 ms) and where few x rows still make many weight
// tiles (n >= 8192, m <= 128: 0.054 vs 0.080 ms); elsewhere it ran 1.1-2.6x slower.
inline bool tiled_gemm_preferred(const QuantWeightParams& p, int64_t n, int64_t m) {
  return (p.scheme == QuantScheme::Affine && p.bits == 2 && m <= 512) || (n >= 8192 && m <= 128);
}

// The tiled quantized GEMM: bf16/f16 x, any M, any format the decoder serves, whole rows of
// 16-byte-aligned quads of code words (K tails past a 16-word step are handled).
bool quant_gemm_kernel_supported(const PackedWeight& w, const TensorRef& x, int64_t m);
// out[m, N] = x[m, K] . dequant(W)^T (+ bias), x/out/bias of `dtype` (bf16 or f16).
Status quant_gemm_tiled(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x,
                        DType dtype, const void* bias, void* out, int64_t m);

}  // namespace etgpu::cuda
