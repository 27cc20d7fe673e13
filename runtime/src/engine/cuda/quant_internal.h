// Host-side pieces shared by the quantized-linear files: quant.cu (entry points, GEMM path,
// embedding) and quant_gemv.cu (the decode GEMV).
#pragma once

#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

struct PackedWeight;

// x rows up to this many take the GEMV (8 per pass: the mma's 8 columns); more take the GEMM
// path. Each pass decodes the whole weight again (from L2), so past ~64 rows writing one bf16
// copy for cuBLASLt is cheaper.
constexpr int64_t kMaxGemvRows = 64;

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m);
// out[m, N] = x[m, K] . dequant(W)^T (+ bias), x/out/bias of `dtype` (bf16 or f16).
Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m);

}  // namespace etgpu::cuda
