// Quantized linear and embedding on the CPU engine (layout: ops.h, docs/quantization.md).
// PLACEHOLDER until the quantization kernels land: reports a clear error.
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {

Status quant_linear(const Node&, const QuantLinearParams&) {
  return Status::error("quant_linear is not implemented by the cpu engine yet");
}
Status quant_embedding(const Node&, const QuantEmbeddingParams&) {
  return Status::error("quant_embedding is not implemented by the cpu engine yet");
}

}  // namespace etgpu::cpu
