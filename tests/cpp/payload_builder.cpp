#include "payload_builder.h"

#include <cstring>

namespace etgpu::testing {

std::vector<uint8_t> build_payload(const GraphDesc& graph) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<ir::SymDim>> syms;
  for (const SymDesc& s : graph.syms) syms.push_back(ir::CreateSymDimDirect(fbb, s.name.c_str(), s.min, s.max));
  std::vector<flatbuffers::Offset<ir::Tensor>> tensors;
  for (const TensorDesc& t : graph.tensors) {
    tensors.push_back(ir::CreateTensorDirect(fbb, t.name.empty() ? nullptr : t.name.c_str(), t.dtype, &t.shape,
                                             t.storage, t.offset, t.nbytes,
                                             t.key.empty() ? nullptr : t.key.c_str(),
                                             t.data.empty() ? nullptr : &t.data, t.alias_of, t.encoding));
  }
  std::vector<flatbuffers::Offset<ir::Instruction>> instructions;
  for (const BinaryDesc& b : graph.instructions) {
    auto op = ir::CreateBinary(fbb, b.op, b.a, b.b, b.out);
    instructions.push_back(ir::CreateInstruction(fbb, ir::Op::Binary, op.Union()));
  }
  for (const InstructionBuilder& build : graph.other_instructions) instructions.push_back(build(fbb));
  auto g = ir::CreateGraphDirect(fbb, &syms, &tensors, &instructions, &graph.inputs, &graph.outputs,
                                 graph.arena_bytes);
  ir::FinishProgramBuffer(fbb, ir::CreateProgram(fbb, graph.version, g));
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

std::vector<uint8_t> float_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

GraphDesc add_graph(bool inline_weight) {
  GraphDesc g;
  g.syms = {{"s", 1, 8}};
  TensorDesc x{"x", ir::DType::F32, {sym(0), fixed(3)}, ir::Storage::Arena, 0, 8 * 3 * 4};
  TensorDesc w{"w", ir::DType::F32, {fixed(3)}, ir::Storage::Constant, 0, 12};
  if (inline_weight) w.data = float_bytes({1, 2, 3});
  else w.key = "w";
  TensorDesc y{"y", ir::DType::F32, {sym(0), fixed(3)}, ir::Storage::Arena, 96, 8 * 3 * 4};
  g.tensors = {x, w, y};
  g.instructions = {{ir::BinaryOp::Add, 0, 1, 2}};
  g.inputs = {0};
  g.outputs = {2};
  g.arena_bytes = 192;
  return g;
}

namespace {

void put_u64(std::vector<uint8_t>* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_u32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t align64(uint64_t n) { return (n + 63) / 64 * 64; }

}  // namespace

std::vector<uint8_t> pack_container(const std::vector<uint8_t>& payload, const Constants& constants) {
  uint64_t table = 0;
  for (const auto& [key, bytes] : constants) table += 4 + key.size() + 16;
  uint64_t cursor = align64(8 + 24 + table);
  const uint64_t payload_offset = cursor;
  cursor = align64(cursor + payload.size());
  std::vector<uint64_t> offsets;
  for (const auto& [key, bytes] : constants) {
    offsets.push_back(cursor);
    cursor = align64(cursor + bytes.size());
  }
  std::vector<uint8_t> out = {'E', 'T', 'G', 'P', 'U', 'F', '0', '1'};
  put_u64(&out, payload_offset);
  put_u64(&out, payload.size());
  put_u64(&out, constants.size());
  for (size_t i = 0; i < constants.size(); ++i) {
    put_u32(&out, static_cast<uint32_t>(constants[i].first.size()));
    out.insert(out.end(), constants[i].first.begin(), constants[i].first.end());
    put_u64(&out, offsets[i]);
    put_u64(&out, constants[i].second.size());
  }
  out.resize(cursor, 0);
  std::memcpy(out.data() + payload_offset, payload.data(), payload.size());
  for (size_t i = 0; i < constants.size(); ++i) {
    std::memcpy(out.data() + offsets[i], constants[i].second.data(), constants[i].second.size());
  }
  return out;
}

std::vector<uint8_t> add_model_file() {
  return pack_container(build_payload(add_graph()), {{"w", float_bytes({1, 2, 3})}});
}

}  // namespace etgpu::testing
