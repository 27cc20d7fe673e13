// Quantized linear and embedding on the CUDA engine (layout: ops.h, docs/quantization.md).
// PLACEHOLDER until the quantization kernels land: reports a clear error.
#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

Status quant_linear(const Context&, const Node&, const QuantLinearParams&) {
  return Status::error("quant_linear is not implemented by the cuda engine yet");
}
Status quant_embedding(const Context&, const Node&, const QuantEmbeddingParams&) {
  return Status::error("quant_embedding is not implemented by the cuda engine yet");
}

}  // namespace etgpu::cuda
