// ExecuTorch ScalarType -> etgpu DType. Kept apart from the executor headers: tools that include
// ExecuTorch's executor headers (which forward-declare flatbuffers::Vector<T, SizeT>) cannot also
// include etgpu's generated schema (built against the system flatbuffers).
#pragma once

#include <executorch/runtime/core/exec_aten/exec_aten.h>

#include "engine/tensor.h"
#include "etgpu/status.h"

namespace etgpu {

Result<DType> dtype_from_scalar_type(executorch::aten::ScalarType type);

}  // namespace etgpu
