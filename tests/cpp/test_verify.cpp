// Program::load: the FlatBuffer verifier plus the semantic checks the executor relies on. Each
// test breaks one fact of the reference graph and expects a message that names it.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace etgpu
