#pragma once

#include "program/program.h"

namespace etgpu {

// Tensor-level semantic checks: symbolic dims and bounds, shapes, byte sizes (overflow-safe),
// arena placement, aliases, constants, graph inputs and outputs. Instructions are checked as the
// executor decodes them.
Status verify_graph(const ir::Graph& graph, const LoadLimits& limits);

// Byte size of `tensor` for the given symbol values; fails on negative dims or overflow.
Result<uint64_t> tensor_bytes(const ir::Tensor& tensor, const int64_t* sym_values);

}  // namespace etgpu
