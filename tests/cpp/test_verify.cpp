// Program::load: the FlatBuffer verifier plus the semantic checks the executor relies on. Each
// test breaks one fact of the reference graph and expects a message that names it. The last
// section does the same for instructions' shape rules, which the executor checks once the
// shapes are bound (at the first run).
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "exec/executor.h"
#include "payload_builder.h"
#include "program/program.h"

namespace etgpu {
namespace {

using testing::add_graph;
using testing::build_payload;
using testing::fixed;
using testing::GraphDesc;
using testing::sym;

Status load(const GraphDesc& g, const LoadLimits& limits = {}) {
  const auto bytes = build_payload(g);
  return Program::load(bytes.data(), bytes.size(), limits).status();
}

void expect_error(const GraphDesc& g, const std::string& needle, const LoadLimits& limits = {}) {
  const Status status = load(g, limits);
  ASSERT_FALSE(status.is_ok()) << "expected an error mentioning: " << needle;
  EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
}

TEST(Verify, ReferenceGraphLoads) {
  EXPECT_TRUE(load(add_graph()).is_ok()) << load(add_graph()).message();
  EXPECT_TRUE(load(add_graph(/*inline_weight=*/true)).is_ok());
}

TEST(Verify, RejectsBytesThatAreNotAProgram) {
  const std::vector<uint8_t> junk(64, 0x5a);
  auto loaded = Program::load(junk.data(), junk.size());
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_NE(loaded.status().message().find("identifier 'ETGP'"), std::string::npos);
  EXPECT_FALSE(Program::load(nullptr, 0).is_ok());
}

TEST(Verify, CorruptedBytesNeverCrash) {
  const auto good = build_payload(add_graph());
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      auto bytes = good;
      bytes[i] ^= flip;
      // Either outcome is fine; reading out of bounds (ASan) or crashing is not.
      (void)Program::load(bytes.data(), bytes.size());
    }
  }
  // Cutting only the builder's trailing alignment padding may leave a valid buffer, so only the
  // shorter prefixes must fail; none may crash.
  for (size_t size = 8; size < good.size(); ++size) {
    const bool ok = Program::load(good.data(), size).is_ok();
    if (size <= good.size() - 8) EXPECT_FALSE(ok) << "accepted a payload truncated to " << size << " bytes";
  }
}

TEST(Verify, RejectsAnotherFormatVersion) {
  GraphDesc g = add_graph();
  g.version = 99;
  expect_error(g, "format version 99 is not supported");
}

TEST(Verify, RejectsInputAndOutputIdsOutOfRange) {
  GraphDesc g = add_graph();
  g.inputs = {7};
  expect_error(g, "graph input refers to tensor 7 but the graph has 3");
  g = add_graph();
  g.outputs = {-1};
  expect_error(g, "graph output refers to tensor -1");
}

TEST(Verify, RejectsAnInvalidDtype) {
  GraphDesc g = add_graph();
  g.tensors[2].dtype = static_cast<ir::DType>(42);
  expect_error(g, "tensor 2 has invalid dtype 42");
}

TEST(Verify, RejectsTensorsOutsideTheArena) {
  GraphDesc g = add_graph();
  g.tensors[2].offset = 112;  // 112 + 96 > 192
  expect_error(g, "tensor 2 [112, +96) lies outside the arena of 192 bytes");
  g = add_graph();
  g.tensors[2].offset = UINT64_MAX - 15;  // offset + nbytes would wrap around
  expect_error(g, "lies outside the arena");
  g = add_graph();
  g.tensors[2].offset = 40;
  expect_error(g, "arena offset 40 is not 16-byte aligned");
}

TEST(Verify, RejectsAnArenaAboveTheCap) {
  LoadLimits limits;
  limits.max_arena_bytes = 128;
  expect_error(add_graph(), "asks for an arena of 192 bytes; the cap is 128", limits);
}

TEST(Verify, RejectsNbytesSmallerThanTheShapeAtItsBound) {
  GraphDesc g = add_graph();
  g.tensors[0].nbytes = 95;  // [8, 3] f32 needs 96
  expect_error(g, "tensor 0 declares 95 bytes but its shape at the bounds needs 96");
}

TEST(Verify, RejectsInlineConstantOfTheWrongSize) {
  GraphDesc g = add_graph(/*inline_weight=*/true);
  g.tensors[1].data.pop_back();
  expect_error(g, "constant tensor 1 has 11 inline bytes, its shape needs 12");
}

TEST(Verify, RejectsAliasLoopsAndForwardAliases) {
  GraphDesc g = add_graph();
  g.tensors[2].storage = ir::Storage::Alias;
  g.tensors[2].alias_of = 2;  // itself: the smallest loop
  expect_error(g, "alias tensor 2 must refer to an earlier tensor, not 2");
  // Two aliases pointing at each other: the first one refers forward and is rejected.
  g = add_graph();
  g.tensors[0].storage = ir::Storage::Alias;
  g.tensors[0].alias_of = 2;
  g.tensors[2].storage = ir::Storage::Alias;
  g.tensors[2].alias_of = 0;
  expect_error(g, "alias tensor 0 must refer to an earlier tensor, not 2");
}

TEST(Verify, RejectsAliasLargerThanItsBase) {
  GraphDesc g = add_graph();
  g.tensors.push_back({"view", ir::DType::F32, {fixed(25)}, ir::Storage::Alias, 0, 100, "", {}, 0});
  expect_error(g, "alias tensor 3 (100 bytes) is larger than its base tensor 0 (96 bytes)");
}

TEST(Verify, RejectsGraphInputsOutsideTheArena) {
  GraphDesc g = add_graph();
  g.inputs = {1};
  expect_error(g, "graph input tensor 1 must live in the arena");
}

TEST(Verify, RejectsInvalidSymbolBounds) {
  GraphDesc g = add_graph();
  g.syms[0] = {"s", 9, 8};
  expect_error(g, "symbolic dim 's' has invalid bounds [9, 8]");
  g.syms[0] = {"s", -1, 8};
  expect_error(g, "invalid bounds [-1, 8]");
  g.syms[0] = {"s", 1, int64_t{1} << 40};
  expect_error(g, "invalid bounds");
}

TEST(Verify, RejectsDimsNamingAMissingSymbol) {
  GraphDesc g = add_graph();
  g.tensors[0].shape = {sym(3), fixed(3)};
  expect_error(g, "tensor 0: shape refers to symbol 3 but the graph has 1");
}

TEST(Verify, RejectsAbsurdDimensions) {
  GraphDesc g = add_graph();
  g.tensors[0].shape = {fixed(-4), fixed(3)};
  expect_error(g, "tensor 0: shape size -4 is out of range");
  g.tensors[0].shape = {ir::Dim(0, 1, 0, 0), fixed(3)};  // division by zero
  expect_error(g, "divisor 0 is out of range");
}

TEST(Verify, RejectsRankAboveEight) {
  GraphDesc g = add_graph();
  g.tensors[1].shape = std::vector<ir::Dim>(9, fixed(1));
  expect_error(g, "tensor 1 has rank 9; at most 8");
}

// ---- instructions' shape rules ------------------------------------------------------------------

using testing::TensorDesc;

// Runs `g` on the CPU engine with zeroed inputs of the tensors' shapes: the status of the first
// run, where every instruction's shape rules are checked.
Status run_once(const GraphDesc& g) {
  const auto bytes = build_payload(g);
  auto program = Program::load(bytes.data(), bytes.size());
  ETGPU_RETURN_IF_ERROR(program.status());
  auto exec = Executor::create(program.take(), nullptr, make_cpu_engine(1));
  ETGPU_RETURN_IF_ERROR(exec.status());
  std::vector<std::vector<uint8_t>> data;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<HostTensor> inputs;
  for (int id : g.inputs) {
    const TensorDesc& t = g.tensors[id];
    shapes.emplace_back();
    for (const ir::Dim& d : t.shape) shapes.back().push_back(d.add());
    data.emplace_back(t.nbytes, 0);
  }
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const TensorDesc& t = g.tensors[g.inputs[i]];
    const int rank = static_cast<int>(shapes[i].size());
    inputs.push_back({data[i].data(), static_cast<DType>(t.dtype), rank, shapes[i].data()});
  }
  return exec.value()->execute(inputs);
}

void expect_run_error(const GraphDesc& g, const std::string& needle) {
  const Status status = run_once(g);
  ASSERT_FALSE(status.is_ok()) << "expected an error mentioning: " << needle;
  EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
}

// Static-shaped f32 (or `dtype`) tensors placed one after another in the arena (16-byte aligned).
void place(GraphDesc* g, const std::string& name, std::vector<int64_t> shape, ir::DType dtype = ir::DType::F32) {
  uint64_t bytes = dtype == ir::DType::I64 ? 8 : dtype == ir::DType::Bool ? 1 : 4;
  std::vector<ir::Dim> dims;
  for (int64_t s : shape) {
    dims.push_back(fixed(s));
    bytes *= static_cast<uint64_t>(s);
  }
  g->tensors.push_back({name, dtype, dims, ir::Storage::Arena, g->arena_bytes, bytes});
  g->arena_bytes += (bytes + 15) / 16 * 16;
}

// dst[:, :, index[l], :] = x[:, l, :, :] with a seq-major x [1, L, H, D] = [1, 2, 3, 4] into dst
// [1, 3, 5, 4]; `x_shape`, `dim` and the flag are what the tests break.
GraphDesc seq_major_index_copy(std::vector<int64_t> x_shape = {1, 2, 3, 4}, int dim = 2, bool seq_major = true) {
  GraphDesc g;
  place(&g, "x", x_shape);
  place(&g, "index", {2}, ir::DType::I64);
  place(&g, "dst", {1, 3, 5, 4});
  g.other_instructions = {[=](flatbuffers::FlatBufferBuilder& fbb) {
    return ir::CreateInstruction(fbb, ir::Op::IndexCopy, ir::CreateIndexCopy(fbb, 2, 1, 0, dim, seq_major).Union());
  }};
  g.inputs = {0, 1};
  g.outputs = {2};
  return g;
}

TEST(VerifyInstructions, SeqMajorIndexCopyNeedsTheTransposedShape) {
  EXPECT_TRUE(run_once(seq_major_index_copy()).is_ok()) << run_once(seq_major_index_copy()).message();
  // Not transposed: the rows the flag reads are [1, 3, 2, 4], which do not match dst's heads.
  expect_run_error(seq_major_index_copy({1, 3, 2, 4}), "index_copy: index must be 1-d with one entry per slice");
  expect_run_error(seq_major_index_copy({1, 2, 4, 4}), "index_copy: size mismatch at dim 1");
  expect_run_error(seq_major_index_copy({1, 2, 3, 4}, 1),
                   "index_copy: a seq-major x [B, L, H, D] needs a 4-d dst [B, H, S, D] written along dim 2");
  expect_run_error(seq_major_index_copy({2, 3, 4}), "needs a 4-d dst");
  // The same x without the flag is the plain op's shape error.
  expect_run_error(seq_major_index_copy({1, 2, 3, 4}, 2, false), "index_copy: index must be 1-d");
}

// q [1, 2, 3, 4] (B, H, L, E), k [1, 1, 5, 4], v [1, 1, 5, 6], a bool mask [3, 5] and out
// `out_shape` ([B, L, H, Ev] = [1, 3, 2, 6] when seq-major).
GraphDesc seq_major_sdpa(std::vector<int64_t> out_shape = {1, 3, 2, 6}, bool seq_major = true) {
  GraphDesc g;
  place(&g, "q", {1, 2, 3, 4});
  place(&g, "k", {1, 1, 5, 4});
  place(&g, "v", {1, 1, 5, 6});
  place(&g, "mask", {3, 5}, ir::DType::Bool);
  place(&g, "out", out_shape);
  g.other_instructions = {[=](flatbuffers::FlatBufferBuilder& fbb) {
    auto op = ir::CreateSdpa(fbb, 0, 1, 2, 3, 4, 0.0, false, seq_major);
    return ir::CreateInstruction(fbb, ir::Op::Sdpa, op.Union());
  }};
  g.inputs = {0, 1, 2, 3};
  g.outputs = {4};
  return g;
}

TEST(VerifyInstructions, SeqMajorSdpaNeedsTheTransposedOutput) {
  // The mask broadcasts to the scores [B, H, L, S], not to the seq-major out's layout.
  EXPECT_TRUE(run_once(seq_major_sdpa()).is_ok()) << run_once(seq_major_sdpa()).message();
  expect_run_error(seq_major_sdpa({1, 2, 3, 6}), "sdpa: a seq-major output must be [B, L, H, Ev]");
  expect_run_error(seq_major_sdpa({1, 3, 2, 4}), "sdpa: a seq-major output must be [B, L, H, Ev]");
  expect_run_error(seq_major_sdpa({1, 3, 2, 6}, false), "sdpa: output shape mismatch");
}

}  // namespace
}  // namespace etgpu
