// Builds IR payloads and .etgpu containers in C++ with the generated FlatBuffers builder, so the
// tests can hand the runtime exactly the malformed input they mean to (a Python-lowered payload
// can only ever be well formed).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "etgpu_generated.h"

namespace etgpu::testing {

inline ir::Dim fixed(int64_t size) { return ir::Dim(-1, 0, size, 1); }
inline ir::Dim sym(int index) { return ir::Dim(index, 1, 0, 1); }

struct TensorDesc {
  std::string name;
  ir::DType dtype = ir::DType::F32;
  std::vector<ir::Dim> shape;
  ir::Storage storage = ir::Storage::Arena;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  std::string key;            // empty: none
  std::vector<uint8_t> data;  // empty: none
  int alias_of = -1;
  ir::ConstantEncoding encoding = ir::ConstantEncoding::Raw;
};

struct SymDesc {
  std::string name;
  int64_t min = 0;
  int64_t max = 0;
};

struct BinaryDesc {
  ir::BinaryOp op = ir::BinaryOp::Add;
  int a = 0;
  int b = -1;
  int out = 0;
};

// An instruction of any other op, written by the test with the payload's builder.
using InstructionBuilder = std::function<flatbuffers::Offset<ir::Instruction>(flatbuffers::FlatBufferBuilder&)>;

struct GraphDesc {
  std::vector<SymDesc> syms;
  std::vector<TensorDesc> tensors;
  std::vector<BinaryDesc> instructions;
  std::vector<InstructionBuilder> other_instructions;  // run after `instructions`
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  uint64_t arena_bytes = 0;
  uint32_t version = static_cast<uint32_t>(ir::FormatVersion::MAJOR);
};

std::vector<uint8_t> build_payload(const GraphDesc& graph);

// The reference graph the tests start from and break one fact at a time:
//   y[s, 3] = x[s, 3] + w[3], s in [1, 8]; x at arena offset 0, y at 96, arena 192 bytes;
//   w is a constant under key "w" (or inline bytes when `inline_weight`).
GraphDesc add_graph(bool inline_weight = false);
std::vector<uint8_t> float_bytes(const std::vector<float>& values);

using Constants = std::vector<std::pair<std::string, std::vector<uint8_t>>>;
// The container layout of runtime/src/program/container.h (and python/etgpu/container.py).
std::vector<uint8_t> pack_container(const std::vector<uint8_t>& payload, const Constants& constants);
// add_graph() with w = {1, 2, 3} in a container: what the install test and CPU run use.
std::vector<uint8_t> add_model_file();

}  // namespace etgpu::testing
