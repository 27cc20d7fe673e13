#include "program/verify.h"

#include <algorithm>
#include <cstdint>
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

Status verify_dim(const ir::Dim& dim, const std::vector<int64_t>& sym_maxs, const char* what,
                  int tensor) {
  const size_t num_syms = sym_maxs.size();
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
  // eval_dim computes mul * value + add in int64: |mul| < 2^40 times a value < 2^31 would
  // overflow (undefined behaviour), so bound the product for this symbol's largest value.
  const uint64_t abs_mul = static_cast<uint64_t>(dim.mul() < 0 ? -dim.mul() : dim.mul());
  const uint64_t abs_add = static_cast<uint64_t>(dim.add() < 0 ? -dim.add() : dim.add());
  const uint64_t sym_max = static_cast<uint64_t>(sym_maxs[dim.sym()]);
  ETGPU_CHECK(sym_max == 0 || abs_mul <= ((uint64_t{1} << 62) - abs_add) / sym_max, "tensor ",
              tensor, ": ", what, " ", dim.mul(), " * symbol ", dim.sym(), " overflows at its bound ",
              sym_max);
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
      // The executor copies nbytes() from raw inline data, so the two must agree exactly (not
      // just cover the shape): a larger nbytes would read past the end of the inline vector.
      // Encoded bytes are checked against nbytes by their decoder.
      ETGPU_CHECK(t.encoding() != ir::ConstantEncoding::Raw || !t.data() ||
                      (t.data()->size() == max_bytes && t.data()->size() == t.nbytes()),
                  "constant tensor ", index, " has ", t.data() ? t.data()->size() : 0,
                  " inline bytes, its shape needs ", max_bytes, " and it declares ", t.nbytes());
      return Status::ok();
    case ir::Storage::Mutable:
      ETGPU_CHECK(!t.data() || t.data()->size() == t.nbytes(), "mutable tensor ", index, " has ",
                  t.data()->size(), " inline bytes but declares ", t.nbytes());
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

// PackedFloat is for float constants and HuffmanBytes for byte constants only (the formats
// packed_float.cpp and huffman_bytes.cpp decode); their stored bytes are checked when they are
// decoded, at executor creation.
Status verify_encoding(const ir::Tensor& t, int index) {
  const ir::ConstantEncoding encoding = t.encoding();
  if (encoding == ir::ConstantEncoding::Raw) return Status::ok();
  ETGPU_CHECK(encoding == ir::ConstantEncoding::PackedFloat || encoding == ir::ConstantEncoding::HuffmanBytes,
              "tensor ", index, " has unknown constant encoding ", static_cast<int>(encoding));
  const char* name = ir::EnumNameConstantEncoding(encoding);
  ETGPU_CHECK(t.storage() == ir::Storage::Constant, "tensor ", index, " is ", name, "-encoded but not a constant");
  if (encoding == ir::ConstantEncoding::HuffmanBytes) {
    ETGPU_CHECK(t.dtype() == ir::DType::U8, "tensor ", index, " is HuffmanBytes-encoded but its dtype is not U8");
    return Status::ok();
  }
  ETGPU_CHECK(t.dtype() == ir::DType::F32 || t.dtype() == ir::DType::F16 || t.dtype() == ir::DType::BF16,
              "tensor ", index, " is PackedFloat-encoded but its dtype is not F32, F16 or BF16");
  return Status::ok();
}

Status verify_id_list(const flatbuffers::Vector<int32_t>* ids, size_t num_tensors, const char* what) {
  ETGPU_CHECK(ids != nullptr, "graph has no ", what, " list");
  for (int32_t id : *ids) {
    ETGPU_CHECK(id >= 0 && static_cast<size_t>(id) < num_tensors, "graph ", what, " refers to tensor ",
                id, " but the graph has ", num_tensors);
  }
  return Status::ok();
}

// Each affine dim is monotone in its symbol, so its largest value over the symbol's range is at
// one of the two bounds. The product of those per-dim maxima bounds the tensor for every legal
// binding. (Evaluating the whole shape at all-min and all-max is not enough: [s, 100 - s] is
// 0 bytes at both ends and 2500 elements at s = 50.)
Result<uint64_t> tensor_max_bytes(const ir::Tensor& t, const std::vector<int64_t>& mins,
                                  const std::vector<int64_t>& maxs) {
  uint64_t bytes = dtype_bytes(t.dtype());
  if (!t.shape()) return bytes;
  for (const ir::Dim* dim : *t.shape()) {
    const int64_t lo = eval_dim(*dim, mins.data()), hi = eval_dim(*dim, maxs.data());
    ETGPU_CHECK(lo >= 0 && hi >= 0, "a dimension evaluates to a negative size (", lo, " or ", hi,
                ") within its symbol's bounds");
    const uint64_t size = static_cast<uint64_t>(std::max(lo, hi));
    ETGPU_CHECK(size == 0 || bytes <= (uint64_t{1} << 62) / size, "tensor size overflows 64-bit arithmetic");
    bytes *= size;
  }
  return bytes;
}

// Everything the executor allocates (arena, constants, mutable state) is sized from the payload,
// so the total must be capped before anything is allocated.
Status verify_device_bytes(const ir::Graph& graph, const LoadLimits& limits) {
  const uint64_t cap = limits.max_device_bytes;
  uint64_t total = graph.arena_bytes();
  for (const ir::Tensor* t : *graph.tensors()) {
    if (t->storage() != ir::Storage::Constant && t->storage() != ir::Storage::Mutable) continue;
    ETGPU_CHECK(total <= cap && t->nbytes() <= cap - total, "program needs more than ", cap,
                " bytes of device memory (arena ", graph.arena_bytes(), " plus constants and state; "
                "raise the cap with ETGPU_MAX_DEVICE_BYTES or ModelOptions::max_device_bytes)");
    total += t->nbytes();
  }
  ETGPU_CHECK(total <= cap, "program needs ", total, " bytes of device memory; the cap is ", cap,
              " (ETGPU_MAX_DEVICE_BYTES or ModelOptions::max_device_bytes)");
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
  for (size_t i = 0; i < num_tensors; ++i) {
    const ir::Tensor& t = *graph.tensors()->Get(i);
    const int index = static_cast<int>(i);
    ETGPU_CHECK(dtype_valid(t.dtype()), "tensor ", index, " has invalid dtype ", static_cast<int>(t.dtype()));
    const size_t rank = t.shape() ? t.shape()->size() : 0;
    ETGPU_CHECK(rank <= kMaxRank, "tensor ", index, " has rank ", rank, "; at most ", kMaxRank);
    // FlatBuffers (2.0) verifies a vector's length field at 4-byte alignment but not that the
    // 8-byte Dim structs after it are aligned; reading misaligned ones is undefined behaviour.
    ETGPU_CHECK(!t.shape() || reinterpret_cast<uintptr_t>(t.shape()->Data()) % alignof(ir::Dim) == 0,
                "tensor ", index, ": shape vector is misaligned (corrupted payload)");
    if (t.shape()) {
      for (const ir::Dim* dim : *t.shape()) ETGPU_RETURN_IF_ERROR(verify_dim(*dim, maxs, "shape", index));
    }
    auto need = tensor_max_bytes(t, mins, maxs);
    ETGPU_RETURN_IF_ERROR(need.status());
    ETGPU_CHECK(t.nbytes() >= need.value(), "tensor ", index, " declares ", t.nbytes(),
                " bytes but its shape at the bounds needs ", need.value());
    ETGPU_RETURN_IF_ERROR(verify_storage(graph, index, need.value()));
    ETGPU_RETURN_IF_ERROR(verify_encoding(t, index));
  }
  ETGPU_RETURN_IF_ERROR(verify_device_bytes(graph, limits));
  ETGPU_RETURN_IF_ERROR(verify_id_list(graph.inputs(), num_tensors, "input"));
  ETGPU_RETURN_IF_ERROR(verify_id_list(graph.outputs(), num_tensors, "output"));
  for (int32_t id : *graph.inputs()) {
    ETGPU_CHECK(graph.tensors()->Get(id)->storage() == ir::Storage::Arena, "graph input tensor ", id,
                " must live in the arena");
  }
  return Status::ok();
}

}  // namespace etgpu
