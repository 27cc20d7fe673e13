#include "program/verify.h"

#include <vector>

namespace etgpu {
namespace {

constexpr int64_t kMaxDimCoefficient = int64_t{1} << 40;
constexpr int64_t kMaxSymbolValue = int64_t{1} << 31;
constexpr int kMaxRank = 8;

bool dtype_valid(ir::DType d) {
  return static_cast<int>(d) >= 0 && d <= ir::DType::Bool;
}

uint64_t dtype_bytes(ir::DType d) {
  switch (d) {
    case ir::DType::F32: case ir::DType::I32: return 4;
    case ir::DType::F16: case ir::DType::BF16: case ir::DType::I16: return 2;
    case ir::DType::I64: return 8;
    default: return 1;
  }
}

Status verify_dim(const ir::Dim& dim, size_t num_syms, const char* what, int tensor) {
  if (dim.sym() < 0) {
    ETGPU_CHECK(dim.add() >= 0 && dim.add() < kMaxDimCoefficient, "tensor ", tensor, ": ", what,
                " size ", dim.add(), " is out of range");
    return Status::ok();
  }
  ETGPU_CHECK(static_cast<size_t>(dim.sym()) < num_syms, "tensor ", tensor, ": ", what,
              " refers to symbol ", dim.sym(), " but the graph has ", num_syms);
  ETGPU_CHECK(dim.div() >= 1 && dim.div() < kMaxDimCoefficient, "tensor ", tensor,
              ": divisor ", dim.div(), " is out of range");
  ETGPU_CHECK(dim.mul() > -kMaxDimCoefficient && dim.mul() < kMaxDimCoefficient &&
                  dim.add() > -kMaxDimCoefficient && dim.add() < kMaxDimCoefficient,
              "tensor ", tensor, ": symbolic coefficients are out of range");
  return Status::ok();
}

Status verify_syms(const ir::Graph& graph, std::vector<int64_t>* mins, std::vector<int64_t>* maxs) {
  if (!graph.sym_dims()) return Status::ok();
  for (const ir::SymDim* sym : *graph.sym_dims()) {
    ETGPU_CHECK(sym->min() >= 0 && sym->min() <= sym->max() && sym->max() < kMaxSymbolValue,
                "symbolic dim '", sym->name() ? sym->name()->str() : "?", "' has invalid bounds [",
                sym->min(), ", ", sym->max(), "]");
    mins->push_back(sym->min());
    maxs->push_back(sym->max());
  }
  return Status::ok();
}

Status verify_storage(const ir::Graph& graph, int index, uint64_t max_bytes) {
  const ir::Tensor& t = *graph.tensors()->Get(index);
  switch (t.storage()) {
    case ir::Storage::Arena:
      ETGPU_CHECK(t.offset() <= graph.arena_bytes() && t.nbytes() <= graph.arena_bytes() - t.offset(),
                  "tensor ", index, " [", t.offset(), ", +", t.nbytes(), ") lies outside the arena of ",
                  graph.arena_bytes(), " bytes");
      ETGPU_CHECK(t.offset() % 16 == 0, "tensor ", index, " arena offset ", t.offset(),
                  " is not 16-byte aligned");
      return Status::ok();
    case ir::Storage::Constant:
      ETGPU_CHECK(t.key() != nullptr || t.data() != nullptr, "constant tensor ", index,
                  " has neither a key nor inline data");
      ETGPU_CHECK(!t.data() || t.data()->size() == max_bytes, "constant tensor ", index, " has ",
                  t.data() ? t.data()->size() : 0, " inline bytes, its shape needs ", max_bytes);
      return Status::ok();
    case ir::Storage::Mutable:
      return Status::ok();
    case ir::Storage::Alias: {
      const int target = t.alias_of();
      ETGPU_CHECK(target >= 0 && target < index, "alias tensor ", index,
                  " must refer to an earlier tensor, not ", target);
      const ir::Tensor& base = *graph.tensors()->Get(target);
      ETGPU_CHECK(base.nbytes() >= t.nbytes(), "alias tensor ", index, " (", t.nbytes(),
                  " bytes) is larger than its base tensor ", target, " (", base.nbytes(), " bytes)");
      return Status::ok();
    }
  }
  return err("tensor ", index, " has unknown storage kind ", static_cast<int>(t.storage()));
}

Status verify_id_list(const flatbuffers::Vector<int32_t>* ids, size_t num_tensors, const char* what) {
  ETGPU_CHECK(ids != nullptr, "graph has no ", what, " list");
  for (int32_t id : *ids) {
    ETGPU_CHECK(id >= 0 && static_cast<size_t>(id) < num_tensors, "graph ", what, " refers to tensor ",
                id, " but the graph has ", num_tensors);
  }
  return Status::ok();
}

}  // namespace

Result<uint64_t> tensor_bytes(const ir::Tensor& tensor, const int64_t* sym_values) {
  uint64_t bytes = dtype_bytes(tensor.dtype());
  if (!tensor.shape()) return bytes;
  for (const ir::Dim* dim : *tensor.shape()) {
    const int64_t size = eval_dim(*dim, sym_values);
    ETGPU_CHECK(size >= 0, "a dimension evaluates to the negative size ", size);
    ETGPU_CHECK(size == 0 || bytes <= (uint64_t{1} << 62) / static_cast<uint64_t>(size),
                "tensor size overflows 64-bit arithmetic");
    bytes *= static_cast<uint64_t>(size);
  }
  return bytes;
}

Status verify_graph(const ir::Graph& graph, const LoadLimits& limits) {
  ETGPU_CHECK(graph.tensors() != nullptr && graph.instructions() != nullptr,
              "graph lacks its tensor or instruction table");
  const size_t num_tensors = graph.tensors()->size();
  ETGPU_CHECK(num_tensors <= limits.max_tensors, "graph has ", num_tensors, " tensors; limit is ",
              limits.max_tensors);
  ETGPU_CHECK(graph.instructions()->size() <= limits.max_instructions, "graph has ",
              graph.instructions()->size(), " instructions; limit is ", limits.max_instructions);
  ETGPU_CHECK(graph.arena_bytes() <= limits.max_arena_bytes, "graph asks for an arena of ",
              graph.arena_bytes(), " bytes; the cap is ", limits.max_arena_bytes);
  std::vector<int64_t> mins, maxs;
  ETGPU_RETURN_IF_ERROR(verify_syms(graph, &mins, &maxs));
  const size_t num_syms = mins.size();
  for (size_t i = 0; i < num_tensors; ++i) {
    const ir::Tensor& t = *graph.tensors()->Get(i);
    const int index = static_cast<int>(i);
    ETGPU_CHECK(dtype_valid(t.dtype()), "tensor ", index, " has invalid dtype ", static_cast<int>(t.dtype()));
    const size_t rank = t.shape() ? t.shape()->size() : 0;
    ETGPU_CHECK(rank <= kMaxRank, "tensor ", index, " has rank ", rank, "; at most ", kMaxRank);
    if (t.shape()) {
      for (const ir::Dim* dim : *t.shape()) ETGPU_RETURN_IF_ERROR(verify_dim(*dim, num_syms, "shape", index));
    }
    // Affine dims are monotone in their symbol, so both bounds cover every legal binding.
    auto at_min = tensor_bytes(t, mins.data());
    auto at_max = tensor_bytes(t, maxs.data());
    ETGPU_RETURN_IF_ERROR(at_min.status());
    ETGPU_RETURN_IF_ERROR(at_max.status());
    const uint64_t need = std::max(at_min.value(), at_max.value());
    ETGPU_CHECK(t.nbytes() >= need, "tensor ", index, " declares ", t.nbytes(),
                " bytes but its shape at the bounds needs ", need);
    ETGPU_RETURN_IF_ERROR(verify_storage(graph, index, need));
  }
  ETGPU_RETURN_IF_ERROR(verify_id_list(graph.inputs(), num_tensors, "input"));
  ETGPU_RETURN_IF_ERROR(verify_id_list(graph.outputs(), num_tensors, "output"));
  for (int32_t id : *graph.inputs()) {
    ETGPU_CHECK(graph.tensors()->Get(id)->storage() == ir::Storage::Arena, "graph input tensor ", id,
                " must live in the arena");
  }
  return Status::ok();
}

}  // namespace etgpu
