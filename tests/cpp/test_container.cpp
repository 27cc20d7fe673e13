// The .etgpu container is untrusted input: every malformed file must give an Error with a
// message, never a crash or an out-of-bounds read (run these under ETGPU_SANITIZE=address too).
#include <gtest/gtest.h>

#include <cstring>

#include "payload_builder.h"
#include "program/container.h"

namespace etgpu {
namespace {

using testing::Constants;
using testing::pack_container;

Result<std::shared_ptr<Container>> parse(std::vector<uint8_t> bytes) {
  return Container::parse(std::make_shared<std::vector<uint8_t>>(std::move(bytes)));
}

void set_u64(std::vector<uint8_t>* bytes, size_t at, uint64_t v) { std::memcpy(bytes->data() + at, &v, 8); }

// Offsets of the header fields (see container.h).
constexpr size_t kPayloadOffset = 8, kPayloadSize = 16, kCount = 24, kFirstEntry = 32;

TEST(Container, ParsesPayloadAndConstants) {
  const std::vector<uint8_t> payload = {1, 2, 3, 4, 5};
  auto parsed = parse(pack_container(payload, {{"a", {9, 9}}, {"bb", {7}}}));
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  auto& c = parsed.value();
  ASSERT_EQ(c->payload().size, payload.size());
  EXPECT_EQ(std::memcmp(c->payload().data, payload.data(), payload.size()), 0);
  auto a = c->get("a");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a.value().size, 2u);
  EXPECT_EQ(static_cast<const uint8_t*>(a.value().data)[1], 9);
  auto missing = c->get("zz");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("'zz' is not in the .etgpu file"), std::string::npos);
}

TEST(Container, RejectsWrongMagic) {
  auto bytes = pack_container({1}, {});
  bytes[0] = 'X';
  auto parsed = parse(bytes);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("magic"), std::string::npos);
}

TEST(Container, EveryTruncationFailsCleanly) {
  // 128 constant bytes end exactly at the end of the file (no padding), so every prefix cuts data.
  const auto bytes = pack_container({1, 2, 3}, {{"weight", std::vector<uint8_t>(128, 1)}});
  for (size_t size = 0; size < bytes.size(); ++size) {
    auto parsed = parse(std::vector<uint8_t>(bytes.begin(), bytes.begin() + size));
    EXPECT_FALSE(parsed.is_ok()) << "a file truncated to " << size << " bytes was accepted";
    EXPECT_FALSE(parsed.status().message().empty());
  }
}

TEST(Container, RejectsPayloadOutsideTheFile) {
  auto bytes = pack_container({1, 2, 3}, {});
  set_u64(&bytes, kPayloadSize, bytes.size());
  auto parsed = parse(bytes);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("payload"), std::string::npos);
  EXPECT_NE(parsed.status().message().find("outside the file"), std::string::npos);
}

TEST(Container, RejectsOffsetPlusSizeThatWrapsAround) {
  auto bytes = pack_container({1, 2, 3}, {});
  set_u64(&bytes, kPayloadOffset, 16);
  set_u64(&bytes, kPayloadSize, UINT64_MAX - 8);  // 16 + size overflows 64 bits
  EXPECT_FALSE(parse(bytes).is_ok());
}

TEST(Container, RejectsConstantOutsideTheFile) {
  auto bytes = pack_container({1}, {{"k", {1, 2}}});
  const size_t offset_field = kFirstEntry + 4 + 1;  // u32 key length, key "k", then u64 offset
  set_u64(&bytes, offset_field, bytes.size() - 1);
  auto parsed = parse(bytes);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("constant 'k'"), std::string::npos);
}

TEST(Container, RejectsDuplicateKeys) {
  auto parsed = parse(pack_container({1}, {{"w", {1}}, {"w", {2}}}));
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("'w' appears twice"), std::string::npos);
}

TEST(Container, RejectsHugeConstantCountWithoutAllocating) {
  auto bytes = pack_container({1}, {});
  set_u64(&bytes, kCount, UINT64_MAX);
  auto parsed = parse(bytes);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("constants"), std::string::npos);
}

TEST(Container, RejectsKeyLengthPastTheEnd) {
  auto bytes = pack_container({1}, {{"k", {1}}});
  const uint32_t huge = 0xFFFFFFF0u;
  std::memcpy(bytes.data() + kFirstEntry, &huge, 4);
  auto parsed = parse(bytes);
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("truncated"), std::string::npos);
}

TEST(Container, ReadFileReportsAMissingFile) {
  auto parsed = Container::read_file("/nonexistent/model.etgpu");
  ASSERT_FALSE(parsed.is_ok());
  EXPECT_NE(parsed.status().message().find("cannot open '/nonexistent/model.etgpu'"), std::string::npos);
}

}  // namespace
}  // namespace etgpu
