// Moving tensors between ExecuTorch EValues and the executor: dtype mapping, input views,
// output resize + copy-out.
#pragma once

#include <executorch/runtime/core/evalue.h>

#include <cstdint>
#include <vector>

#include "exec/executor.h"
#include "executorch/dtype_map.h"

namespace etgpu {

// A view of an ExecuTorch input tensor; `shape` is storage for its int64 dims (the caller keeps
// it alive while the HostTensor is used).
Result<HostTensor> host_tensor_from(const executorch::runtime::EValue& value, size_t index,
                                    std::vector<int64_t>* shape);

// Resizes ExecuTorch output `index` to the executor's actual output shape (it was planned at the
// upper bound) and copies the result into it.
Status copy_output(Executor& executor, size_t index, executorch::runtime::EValue& value);

}  // namespace etgpu
