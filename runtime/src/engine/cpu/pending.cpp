// TEMPORARY: families whose CPU kernels are being written; each returns a clear error.
#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
Status index_select(const Node&, const IndexSelectParams&) { return err("index_select: not implemented on cpu"); }
Status gather(const Node&, const GatherParams&) { return err("gather: not implemented on cpu"); }
Status sdpa(const Node&, const SdpaParams&) { return err("sdpa: not implemented on cpu"); }
}  // namespace etgpu::cpu
