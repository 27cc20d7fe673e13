// PackedFloat constants (program/packed_float.cpp; layout in docs/quantization.md): hand-built
// payloads decode to the exact bit patterns, every corrupt header or length is an error that says
// what is wrong, and a packed constant goes through Program::load and Executor::create (decoded
// into the CPU engine's memory, or uploaded decoded to a device-style engine) or is refused
// there, naming the constant.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>

#include "engine/engine.h"
#include "exec/executor.h"
#include "executor_support.h"
#include "payload_builder.h"
#include "program/packed_float.h"

namespace etgpu {
namespace {

using testing::add_graph;
using testing::build_payload;
using testing::GraphDesc;
using testing::load_status;
using testing::make_executor;
using testing::MapConstants;

// The header of docs/quantization.md: magic, version, the format's exponent and mantissa bits,
// stored exponent bits, sign flag, element count, minimum exponent, three zero bytes.
std::vector<uint8_t> header(uint8_t format_e, uint8_t format_m, uint8_t stored_e, uint8_t sign, uint32_t count,
                            uint8_t min_exponent) {
  return {'E', 'P', 'F', 1, format_e, format_m, stored_e, sign, static_cast<uint8_t>(count),
          static_cast<uint8_t>(count >> 8), static_cast<uint8_t>(count >> 16), static_cast<uint8_t>(count >> 24),
          min_exponent, 0, 0, 0};
}

// Appends each code's low `width` bits to the stream after the header, lowest bit first.
std::vector<uint8_t> with_codes(std::vector<uint8_t> payload, const std::vector<uint32_t>& codes, int width) {
  const size_t start = payload.size();
  payload.resize(start + (codes.size() * width + 7) / 8, 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    for (int b = 0; b < width; ++b) {
      const size_t bit = i * width + b;
      if (codes[i] >> b & 1) payload[start + bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  return payload;
}

// bf16 {1.0, -2.0, 0.5} = {0x3F80, 0xC000, 0x3F00}: exponents 127, 128, 126, so min 126, 2 stored
// exponent bits, a sign bit, 10 bits each: codes 0b0'01'0000000, 0b1'10'0000000, 0: 30 bits. The
// same bytes are the encoder's expected output in tests/test_packed_float.py.
const std::vector<uint8_t> kDocumentedExample = {'E', 'P', 'F', 1, 8, 7, 2, 1, 3, 0, 0, 0, 126, 0, 0, 0,
                                                 0x80, 0x00, 0x0C, 0x00};

template <typename Word>
Result<std::vector<Word>> decode(const std::vector<uint8_t>& payload, ir::DType dtype, size_t count) {
  std::vector<Word> out(count);
  ETGPU_RETURN_IF_ERROR(decode_packed_float(payload.data(), payload.size(), dtype, out.data(), count * sizeof(Word)));
  return out;
}

TEST(PackedFloat, DecodesTheDocumentedExample) {
  auto out = decode<uint16_t>(kDocumentedExample, ir::DType::BF16, 3);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), (std::vector<uint16_t>{0x3F80, 0xC000, 0x3F00}));
}

TEST(PackedFloat, KeepsZerosSubnormalsInfinitiesAndNaNPayloads) {
  // With min exponent 0, all 8 exponent bits and the sign stored, an f32 code is the value itself.
  const std::vector<uint32_t> values = {0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000,
                                        0xFF800000, 0x7FC00001, 0x7F800001, 0xFFFFFFFF, 0x3F800000};
  auto out = decode<uint32_t>(with_codes(header(8, 23, 8, 1, 10, 0), values, 32), ir::DType::F32, 10);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), values);
}

TEST(PackedFloat, DecodesF16WithRelativeExponents) {
  // f16 {1.0, 2.0, 0.5, 1.5} = exponents 15, 16, 14, 15; min 14, 2 bits, no sign: 12-bit codes.
  const std::vector<uint32_t> codes = {1u << 10, 2u << 10, 0, 1u << 10 | 0x200};
  auto out = decode<uint16_t>(with_codes(header(5, 10, 2, 0, 4, 14), codes, 12), ir::DType::F16, 4);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), (std::vector<uint16_t>{0x3C00, 0x4000, 0x3800, 0x3E00}));
}

TEST(PackedFloat, OneExponentNeedsNoExponentBits) {
  // bf16 0x3F85 alone: exponent 127 is the minimum, the 7-bit mantissa 0x05 is the whole code.
  auto out = decode<uint16_t>(with_codes(header(8, 7, 0, 0, 1, 127), {0x05}, 7), ir::DType::BF16, 1);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out.value(), (std::vector<uint16_t>{0x3F85}));
}

struct Corruption {
  const char* what;
  std::function<void(std::vector<uint8_t>*)> change;
  const char* message;
};

TEST(PackedFloat, RejectsCorruptPayloads) {
  const std::vector<Corruption> cases = {
      {"bad magic", [](auto* p) { (*p)[0] = 'X'; }, "bad magic"},
      {"unknown version", [](auto* p) { (*p)[3] = 2; }, "version 2 is not supported"},
      {"another format", [](auto* p) { (*p)[4] = 5, (*p)[5] = 10; }, "holds e5m10 floats but the tensor's dtype is e8m7"},
      {"absurd exponent bits", [](auto* p) { (*p)[6] = 200; }, "stores 200 exponent bits; the format has 8"},
      {"bad sign flag", [](auto* p) { (*p)[7] = 2; }, "sign flag is 2"},
      {"count mismatch", [](auto* p) { (*p)[8] = 4; }, "holds 4 elements; the tensor has 3"},
      {"huge count", [](auto* p) { (*p)[11] = 0xff; }, "elements; the tensor has 3"},
      {"reserved byte", [](auto* p) { (*p)[15] = 1; }, "reserved bytes are not zero"},
      {"truncated", [](auto* p) { p->pop_back(); }, "has 19 bytes; its header implies 20 (truncated)"},
      {"trailing byte", [](auto* p) { p->push_back(0); }, "has 21 bytes; its header implies 20 (trailing bytes)"},
      {"header cut short", [](auto* p) { p->resize(15); }, "shorter than its 16-byte header"},
      {"empty", [](auto* p) { p->clear(); }, "payload of 0 bytes"},
  };
  for (const Corruption& c : cases) {
    std::vector<uint8_t> payload = kDocumentedExample;
    c.change(&payload);
    auto out = decode<uint16_t>(payload, ir::DType::BF16, 3);
    ASSERT_FALSE(out.is_ok()) << c.what;
    EXPECT_NE(out.status().message().find(c.message), std::string::npos) << c.what << ": " << out.status().message();
  }
}

TEST(PackedFloat, RejectsAnExponentOutsideTheFormat) {
  // f16 has 5 exponent bits: a minimum of 32 cannot be one; nor can 30 + a relative 3.
  auto min_too_big = decode<uint16_t>(with_codes(header(5, 10, 2, 0, 1, 32), {0}, 12), ir::DType::F16, 1);
  ASSERT_FALSE(min_too_big.is_ok());
  EXPECT_NE(min_too_big.status().message().find("minimum exponent 32 does not fit"), std::string::npos);
  auto sum_too_big = decode<uint16_t>(with_codes(header(5, 10, 2, 0, 2, 30), {0, 3u << 10}, 12), ir::DType::F16, 2);
  ASSERT_FALSE(sum_too_big.is_ok());
  EXPECT_NE(sum_too_big.status().message().find("exponent exceeds the format"), std::string::npos);
}

TEST(PackedFloat, RejectsNonFloatDtypesAndOddSizes) {
  std::vector<uint32_t> out(3);
  Status status = decode_packed_float(kDocumentedExample.data(), kDocumentedExample.size(), ir::DType::I32,
                                      out.data(), 12);
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("not dtype"), std::string::npos) << status.message();
  status = decode_packed_float(kDocumentedExample.data(), kDocumentedExample.size(), ir::DType::BF16, out.data(), 7);
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("the tensor has 3 (7 bytes)"), std::string::npos) << status.message();
}

// ---- through Program::load and Executor::create -------------------------------------------------

// f32 {1, 2, 3}: exponents 127, 128, 128 (min 127, 1 bit), mantissas 0, 0, 0x400000: 24-bit codes.
std::vector<uint8_t> packed_one_two_three() {
  return with_codes(header(8, 23, 1, 0, 3, 127), {0, 1u << 23, 1u << 23 | 0x400000}, 24);
}

GraphDesc packed_add_graph(bool inline_weight = false) {
  GraphDesc g = add_graph();
  g.tensors[1].encoding = ir::ConstantEncoding::PackedFloat;
  if (inline_weight) g.tensors[1].key.clear(), g.tensors[1].data = packed_one_two_three();
  return g;
}

void expect_adds_one_two_three(Executor& exec) {
  const std::vector<float> x = {10, 20, 30};
  const int64_t shape[2] = {1, 3};
  ASSERT_TRUE(exec.execute({{x.data(), DType::F32, 2, shape}}).is_ok());
  std::vector<float> y(3);
  ASSERT_TRUE(exec.read_output(0, y.data(), sizeof(float) * 3).is_ok());
  EXPECT_EQ(y, (std::vector<float>{11, 22, 33}));
}

TEST(PackedFloatConstant, IsDecodedWhenTheExecutorIsCreated) {
  MapConstants constants;
  constants.bytes["w"] = packed_one_two_three();
  auto exec = make_executor(packed_add_graph(), &constants);
  ASSERT_TRUE(exec.is_ok()) << exec.status().message();
  expect_adds_one_two_three(*exec.value());
  EXPECT_EQ(exec.value()->stats().constant_bytes, 12u);  // decoded bytes
  auto inline_exec = make_executor(packed_add_graph(/*inline_weight=*/true), nullptr);
  ASSERT_TRUE(inline_exec.is_ok()) << inline_exec.status().message();
  expect_adds_one_two_three(*inline_exec.value());
}

// The CPU engine posing as a device engine (memory the executor may not write directly), as the
// CUDA engine is: packed constants then take the decode-into-a-host-buffer-and-upload path.
class StagingEngine : public Engine {
 public:
  const char* name() const override { return "staging"; }
  bool uses_host_memory() const override { return false; }
  Result<void*> allocate(size_t bytes) override { return cpu_->allocate(bytes); }
  void release(void* ptr) override { cpu_->release(ptr); }
  Status upload(void* dst, const void* src, size_t bytes) override {
    uploaded_bytes += bytes;
    return cpu_->upload(dst, src, bytes);
  }
  Status download(void* dst, const void* src, size_t bytes) override { return cpu_->download(dst, src, bytes); }
  Status zero(void* dst, size_t bytes) override { return cpu_->zero(dst, bytes); }
  Status synchronize() override { return cpu_->synchronize(); }
  Status run(const Node& node) override { return cpu_->run(node); }
  EngineStats stats() const override { return cpu_->stats(); }
  size_t uploaded_bytes = 0;

 private:
  std::unique_ptr<Engine> cpu_ = make_cpu_engine(1);
};

TEST(PackedFloatConstant, IsUploadedDecodedToADeviceEngine) {
  MapConstants constants;
  constants.bytes["w"] = packed_one_two_three();
  const auto bytes = build_payload(packed_add_graph());
  auto program = Program::load(bytes.data(), bytes.size());
  ASSERT_TRUE(program.is_ok()) << program.status().message();
  auto engine = std::make_unique<StagingEngine>();
  StagingEngine* staging = engine.get();
  auto exec = Executor::create(program.take(), &constants, std::move(engine));
  ASSERT_TRUE(exec.is_ok()) << exec.status().message();
  EXPECT_EQ(staging->uploaded_bytes, 12u);  // the decoded f32 {1, 2, 3}, not the 25 stored bytes
  expect_adds_one_two_three(*exec.value());
}

TEST(PackedFloatConstant, ACorruptOneIsNamedAtCreate) {
  MapConstants constants;
  constants.bytes["w"] = packed_one_two_three();
  constants.bytes["w"].pop_back();
  auto exec = make_executor(packed_add_graph(), &constants);
  ASSERT_FALSE(exec.is_ok());
  EXPECT_NE(exec.status().message().find("constant 'w': packed-float payload has 24 bytes; its header implies 25"),
            std::string::npos)
      << exec.status().message();
  // Raw bytes of the decoded size are not a packed payload either.
  constants.bytes["w"] = testing::float_bytes({1, 2, 3});
  auto raw = make_executor(packed_add_graph(), &constants);
  ASSERT_FALSE(raw.is_ok());
  EXPECT_NE(raw.status().message().find("constant 'w': packed-float payload of 12 bytes is shorter"),
            std::string::npos)
      << raw.status().message();
}

TEST(PackedFloatConstant, LoadAllowsTheEncodingOnlyOnFloatConstants) {
  EXPECT_TRUE(load_status(packed_add_graph()).is_ok());
  GraphDesc integer = packed_add_graph();
  integer.tensors[1].dtype = ir::DType::I32;
  EXPECT_NE(load_status(integer).message().find("tensor 1 is PackedFloat-encoded but its dtype is not F32"),
            std::string::npos)
      << load_status(integer).message();
  GraphDesc arena = add_graph();
  arena.tensors[2].encoding = ir::ConstantEncoding::PackedFloat;
  EXPECT_NE(load_status(arena).message().find("tensor 2 is PackedFloat-encoded but not a constant"), std::string::npos)
      << load_status(arena).message();
  GraphDesc unknown = add_graph();
  unknown.tensors[1].encoding = static_cast<ir::ConstantEncoding>(9);
  EXPECT_NE(load_status(unknown).message().find("tensor 1 has unknown constant encoding 9"), std::string::npos)
      << load_status(unknown).message();
}

}  // namespace
}  // namespace etgpu
