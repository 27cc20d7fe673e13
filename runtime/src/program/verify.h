#pragma once

#include <vector>

#include "program/program.h"

namespace etgpu {

// Tensor-level semantic checks: symbolic dims and bounds, shapes, byte sizes (overflow-safe),
// arena placement, aliases, constants, graph inputs and outputs. Instructions are checked as the
// executor decodes them.
Status verify_graph(const ir::Graph& graph, const LoadLimits& limits);

// Byte size of `tensor` for the given symbol values; fails on negative dims or overflow.
Result<uint64_t> tensor_bytes(const ir::Tensor& tensor, const int64_t* sym_values);

}  // namespace etgpu

namespace etgpu {

// The tensors one instruction reads and those it writes (ids already range-checked): one for
// most ops; AddRmsNorm, a Rope with a cache and SplitLinear write more (Node::extra_out).
struct InstructionOperands {
  std::vector<int> reads;
  std::vector<int> writes;
};

// The tensor whose bytes `id` uses: itself, or the end of its alias chain.
int storage_root(const ir::Graph& graph, int id);

// Facts about the instruction stream as a whole, checked once at init:
//  - no instruction writes a Constant (constants may be borrowed read-only memory, e.g. a .pte
//    mapped read-only, and one program's constants are shared by every Model of it) nor a graph
//    input (the caller's data, uploaded fresh each call);
//  - the memory plan gives tensors that are live at the same time disjoint arena bytes (kernels
//    assume their output does not overlap their inputs, and a later instruction must not
//    clobber a value that is still to be read). Lifetimes follow python/etgpu/lower/memory_plan.py:
//    inputs live from -1, outputs to the end, an alias extends its base's lifetime.
Status verify_plan(const ir::Graph& graph, const std::vector<InstructionOperands>& instructions);

}  // namespace etgpu
