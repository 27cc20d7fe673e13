// Decoding IR instructions into engine parameter structs, checking every operand id and the
// per-op structural facts (operand presence, dims in range) once, at init.
#pragma once

#include <optional>
#include <vector>

#include "engine/ops.h"
#include "program/program.h"

namespace etgpu {

struct DecodedInstruction {
  OpParams params;
  std::vector<int> inputs;  // tensor ids; optional operands that are absent are left out
  int out = -1;
  std::vector<int> extra_outputs;  // written too, after `out` (Node::extra_out)
  // A scalar that depends on bound symbols (slice start, select index, copy offset).
  std::optional<ir::Dim> dynamic_scalar;
};

Result<DecodedInstruction> decode_instruction(const ir::Graph& graph, int index);

// Substitutes the bound value of `dynamic_scalar` into the params (normalising negative
// indices against `size`, the extent of the indexed dim).
void apply_dynamic_scalar(OpParams* params, int64_t value, int64_t size);

// Shape and dtype rules of each op for concrete shapes: run before an engine sees a node, so
// kernels may trust them.
Status validate_node(const Node& node);

}  // namespace etgpu
