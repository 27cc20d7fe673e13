// HuffmanBytes constants (program/huffman_bytes.cpp; layout in docs/quantization.md): hand-built
// payloads decode to the exact bytes on one thread or several, every corrupt header, code, offset
// table or chunk is an error that says what is wrong, and a coded constant goes through
// Program::load and Executor::create (decoded into the CPU engine's memory) or is refused there,
// naming the constant.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "engine/engine.h"
#include "exec/executor.h"
#include "executor_support.h"
#include "payload_builder.h"
#include "program/huffman_bytes.h"

namespace etgpu {
namespace {

using testing::build_payload;
using testing::fixed;
using testing::GraphDesc;
using testing::load_status;
using testing::make_executor;
using testing::MapConstants;

void put_u64(std::vector<uint8_t>* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// The 272-byte header of docs/quantization.md (magic, version, chunk size, decoded size, the 256
// code lengths), the chunks' end offsets, then the chunks' streams.
std::vector<uint8_t> payload(uint32_t chunk_bytes, uint64_t count, const std::map<int, uint8_t>& lengths,
                             const std::vector<uint64_t>& chunk_ends, const std::vector<uint8_t>& stream) {
  std::vector<uint8_t> p = {'E', 'H', 'B', 1};
  for (int i = 0; i < 4; ++i) p.push_back(static_cast<uint8_t>(chunk_bytes >> (8 * i)));
  put_u64(&p, count);
  for (int v = 0; v < 256; ++v) p.push_back(lengths.count(v) ? lengths.at(v) : 0);
  for (uint64_t end : chunk_ends) put_u64(&p, end);
  p.insert(p.end(), stream.begin(), stream.end());
  return p;
}

// Bytes {0, 0, 1, 2}: lengths 1, 2, 2, canonical codes 0, 10, 11, written first bit first from bit
// 0 up: 0 0 10 11 = 0b00110100. The same bytes are the encoder's expected output in
// tests/test_huffman_bytes.py.
const std::map<int, uint8_t> kExampleLengths = {{0, 1}, {1, 2}, {2, 2}};
std::vector<uint8_t> documented_example() { return payload(1u << 20, 4, kExampleLengths, {1}, {0x34}); }

Result<std::vector<uint8_t>> decode(const std::vector<uint8_t>& stored, size_t count, unsigned threads = 0) {
  std::vector<uint8_t> out(count);
  ETGPU_RETURN_IF_ERROR(decode_huffman_bytes(stored.data(), stored.size(), out.data(), count, threads));
  return out;
}

TEST(HuffmanBytes, DecodesTheDocumentedExample) {
  auto out = decode(documented_example(), 4);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), (std::vector<uint8_t>{0, 0, 1, 2}));
}

TEST(HuffmanBytes, DecodesIndependentChunksOnOneThreadOrSeveral) {
  // 1001 chunks of 4 bytes: {0, 0, 1, 2} in each but the last, which holds {1, 2} (10 11 = 0x0D).
  std::vector<uint64_t> ends;
  std::vector<uint8_t> stream(1000, 0x34), expected;
  for (uint64_t c = 1; c <= 1001; ++c) ends.push_back(c);
  stream.push_back(0x0D);
  for (int c = 0; c < 1000; ++c) expected.insert(expected.end(), {0, 0, 1, 2});
  expected.insert(expected.end(), {1, 2});
  const auto stored = payload(4, expected.size(), kExampleLengths, ends, stream);
  for (unsigned threads : {1u, 2u, 0u}) {
    auto out = decode(stored, expected.size(), threads);
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(), expected) << threads << " threads";
  }
}

TEST(HuffmanBytes, LongCodesAndTheFastPath) {
  // Byte 200 has length 1; bytes 0..12 lengths 2..14; bytes 13 and 14 both 15: a complete code
  // whose longest codes need the whole 15-bit table. Canonical: 200 -> 0, 0 -> 10, 1 -> 110, ...,
  // 13 -> 111111111111110, 14 -> 111111111111111. Byte 14, forty times, is 600 one bits: the
  // 8-byte refill loop runs before the byte-at-a-time tail.
  std::map<int, uint8_t> lengths = {{200, 1}, {13, 15}, {14, 15}};
  for (int v = 0; v < 13; ++v) lengths[v] = static_cast<uint8_t>(v + 2);
  std::vector<uint8_t> stream(75, 0xFF);
  auto out = decode(payload(1u << 20, 40, lengths, {75}, stream), 40);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), std::vector<uint8_t>(40, 14));
}

struct Corruption {
  const char* what;
  std::function<void(std::vector<uint8_t>*)> change;
  const char* message;
};

// The two-chunk payload the corruptions start from: chunk size 2, {0, 0 | 1, 2}: 0x00 then 0x0D.
std::vector<uint8_t> two_chunks() { return payload(2, 4, kExampleLengths, {1, 2}, {0x00, 0x0D}); }

TEST(HuffmanBytes, RejectsCorruptPayloads) {
  const std::vector<Corruption> cases = {
      {"bad magic", [](auto* p) { (*p)[0] = 'X'; }, "bad magic"},
      {"unknown version", [](auto* p) { (*p)[3] = 2; }, "version 2 is not supported"},
      {"chunk size 0", [](auto* p) { (*p)[4] = 0; }, "chunk size is 0"},
      {"count mismatch", [](auto* p) { (*p)[8] = 5; }, "decodes to 5 bytes; the tensor has 4"},
      {"huge count", [](auto* p) { (*p)[15] = 0x80; }, "bytes; the tensor has 4"},
      {"length over 15", [](auto* p) { (*p)[16 + 2] = 16; }, "code length of byte 2 is 16; at most 15"},
      {"over-subscribed", [](auto* p) { (*p)[16 + 3] = 1; }, "over-subscribed"},
      {"incomplete", [](auto* p) { (*p)[16 + 2] = 0; }, "incomplete"},
      {"no code at all", [](auto* p) { (*p)[16] = (*p)[17] = (*p)[18] = 0; }, "incomplete"},
      {"decreasing ends", [](auto* p) { (*p)[272] = 2, (*p)[280] = 1; },
       "chunk 1 ends at stream byte 1, before the 2"},
      {"end past the stream", [](auto* p) { (*p)[280] = 3; },
       "chunk 1 ends at stream byte 3, past the 2 stream bytes"},
      {"truncated", [](auto* p) { p->pop_back(); }, "past the 1 stream bytes the payload holds (truncated)"},
      {"trailing byte", [](auto* p) { p->push_back(0); }, "chunks end at stream byte 2 but the payload holds 3"},
      {"offsets cut short", [](auto* p) { p->resize(279); }, "cannot hold its 2 chunk offsets (truncated)"},
      {"header cut short", [](auto* p) { p->resize(271); }, "shorter than its 272-byte header"},
      {"empty", [](auto* p) { p->clear(); }, "payload of 0 bytes"},
      // Chunk 0 empty: its 2 bytes have no bits (chunk 1 gets both stream bytes, too many).
      {"chunk ends inside a code", [](auto* p) { (*p)[272] = 0; },
       "chunk 0 of 2 (stream bytes 0..0) does not decode to its 2 bytes: its bit stream ends inside a code"},
      // Chunk 0 takes both stream bytes: its 2 bytes need the first only.
      {"chunk with bits left over", [](auto* p) { (*p)[272] = 2; },
       "chunk 0 of 2 (stream bytes 0..2) does not decode to its 2 bytes: whole bytes of its bit stream are left over"},
      {"nonzero padding", [](auto* p) { (*p)[289] = 0x8D; },
       "chunk 1 of 2 (stream bytes 1..2) does not decode to its 2 bytes: the padding bits"},
  };
  for (const Corruption& c : cases) {
    std::vector<uint8_t> stored = two_chunks();
    ASSERT_TRUE(decode(stored, 4).is_ok());
    c.change(&stored);
    auto out = decode(stored, 4);
    ASSERT_FALSE(out.is_ok()) << c.what;
    EXPECT_NE(out.status().message().find(c.message), std::string::npos) << c.what << ": " << out.status().message();
  }
}

TEST(HuffmanBytes, AnOffsetTableLargerThanThePayloadIsRefusedBeforeItIsRead) {
  // 2^40 one-byte chunks: the table alone would be 8 TiB; the decoder is told a matching size.
  auto stored = payload(1, uint64_t{1} << 40, kExampleLengths, {1}, {0x34});
  Status status = decode_huffman_bytes(stored.data(), stored.size(), nullptr, size_t{1} << 40);
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("cannot hold its 1099511627776 chunk offsets"), std::string::npos)
      << status.message();
}

// ---- through Program::load and Executor::create -------------------------------------------------

// out[4] = codes[4], a U8 constant stored HuffmanBytes-encoded under key "codes".
GraphDesc copy_codes_graph() {
  GraphDesc g;
  g.tensors = {{"codes", ir::DType::U8, {fixed(4)}, ir::Storage::Constant, 0, 4, "codes"},
               {"out", ir::DType::U8, {fixed(4)}, ir::Storage::Arena, 0, 4}};
  g.tensors[0].encoding = ir::ConstantEncoding::HuffmanBytes;
  g.other_instructions = {[](flatbuffers::FlatBufferBuilder& fbb) {
    return ir::CreateInstruction(fbb, ir::Op::Expand, ir::CreateExpand(fbb, 0, 1).Union());
  }};
  g.outputs = {1};
  g.arena_bytes = 16;
  return g;
}

TEST(HuffmanBytesConstant, IsDecodedWhenTheExecutorIsCreated) {
  MapConstants constants;
  constants.bytes["codes"] = documented_example();
  auto exec = make_executor(copy_codes_graph(), &constants);
  ASSERT_TRUE(exec.is_ok()) << exec.status().message();
  ASSERT_TRUE(exec.value()->execute({}).is_ok());
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(exec.value()->read_output(0, out.data(), out.size()).is_ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{0, 0, 1, 2}));
  EXPECT_EQ(exec.value()->stats().constant_bytes, 4u);  // decoded bytes
}

TEST(HuffmanBytesConstant, ACorruptOneIsNamedAtCreate) {
  MapConstants constants;
  constants.bytes["codes"] = documented_example();
  constants.bytes["codes"].pop_back();
  auto exec = make_executor(copy_codes_graph(), &constants);
  ASSERT_FALSE(exec.is_ok());
  EXPECT_NE(exec.status().message().find("constant 'codes': huffman-bytes chunk 0 ends at stream byte 1, past the 0"),
            std::string::npos)
      << exec.status().message();
  // Raw bytes of the decoded size are not a coded payload either.
  constants.bytes["codes"] = {0, 0, 1, 2};
  auto raw = make_executor(copy_codes_graph(), &constants);
  ASSERT_FALSE(raw.is_ok());
  EXPECT_NE(raw.status().message().find("constant 'codes': huffman-bytes payload of 4 bytes is shorter"),
            std::string::npos)
      << raw.status().message();
}

TEST(HuffmanBytesConstant, LoadAllowsTheEncodingOnlyOnByteConstants) {
  EXPECT_TRUE(load_status(copy_codes_graph()).is_ok());
  GraphDesc floats = testing::add_graph();
  floats.tensors[1].encoding = ir::ConstantEncoding::HuffmanBytes;
  EXPECT_NE(load_status(floats).message().find("tensor 1 is HuffmanBytes-encoded but its dtype is not U8"), std::string::npos)
      << load_status(floats).message();
  GraphDesc arena = copy_codes_graph();
  arena.tensors[1].encoding = ir::ConstantEncoding::HuffmanBytes;
  EXPECT_NE(load_status(arena).message().find("tensor 1 is HuffmanBytes-encoded but not a constant"), std::string::npos)
      << load_status(arena).message();
}

}  // namespace
}  // namespace etgpu
