// Host-side pieces shared by the quantized-linear files: quant.cu (entry points, the dequantize
// path, embedding) and quant_gemv.cu (the decode GEMV).
#pragma once

#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

struct PackedWeight;

// x rows up to this many take the GEMV (8 per pass: the mma's 8 columns); more dequantize the
// weight and multiply with cuBLASLt. Measured on the H200 (bench/quant_gemv_bench, 2026-11-30
// session 17): at M = 16 the GEMV's two passes beat the dequantize pass + cuBLASLt (nvfp4 8192 x
// 2048 ties; int4-g32 2048 x 8192 0.021 vs 0.025 ms, 8192 x 2048 0.019 vs 0.024), at M = 32 they
// lose (0.038 vs 0.026, 0.033 vs 0.023): each pass reads the whole weight again.
constexpr int64_t kMaxGemvRows = 16;

// The GEMV's tiles of weight rows (one per block), and how many one launch takes, all siblings
// together (grid.y's limit).
constexpr int kGemvTileRows = 16;
constexpr int64_t kMaxGemvTiles = 65535;
inline int64_t gemv_tiles(int64_t rows) { return (rows + kGemvTileRows - 1) / kGemvTileRows; }

// Whether the GEMV takes this weight and x with m >= 1 rows (in passes of 8: quant_linear takes
// it only up to kMaxGemvRows).
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
// A gated MLP's Glu computed in the GEMV's epilogue: out = round(act(gate)) * up over the two
// siblings' outputs (gate first, up second, one row count, one NvFp4 tensor scale), rounded as
// the Glu kernel rounds. out must share no byte with x or the siblings' outputs.
struct GemvGlu {
  void* out;
  UnaryOp act;
};
// quant_gemv for each sibling, as one launch (the caller checks quant_gemv_supported for each,
// and that their tiles together stay within kMaxGemvTiles). With `glu` (two siblings), a block
// takes 8 rows of each: its tile pairs gate row j with up row j, and it also writes glu->out.
Status quant_gemv_siblings(const Context& c, const QuantWeightParams& p, const GemvSibling* siblings, int count,
                           const void* x, DType dtype, int64_t m, const GemvGlu* glu = nullptr);

}  // namespace etgpu::cuda
