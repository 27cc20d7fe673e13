// TEMPORARY: families whose CPU kernels are being written; each returns a clear error.
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
Status reduce(const Node&, const ReduceParams&) { return err("reduce: not implemented on cpu"); }
Status softmax(const Node&, const SoftmaxParams&) { return err("softmax: not implemented on cpu"); }
Status layer_norm(const Node&, const LayerNormParams&) { return err("layer_norm: not implemented on cpu"); }
Status rms_norm(const Node&, const RmsNormParams&) { return err("rms_norm: not implemented on cpu"); }
}  // namespace etgpu::cpu
