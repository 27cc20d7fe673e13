#include "program/container.h"

#include <cstring>
#include <fstream>

namespace etgpu {
namespace {

constexpr char kMagic[8] = {'E', 'T', 'G', 'P', 'U', 'F', '0', '1'};
constexpr uint64_t kMaxConstants = 1u << 20;

// Sequential bounds-checked reader over a byte buffer.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  bool read(T* value) {
    if (size_ - pos_ < sizeof(T)) return false;
    std::memcpy(value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool read_string(size_t length, std::string* out) {
    if (size_ - pos_ < length) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool span_fits(uint64_t offset, uint64_t size, size_t total) {
  return offset <= total && size <= total - offset;
}

}  // namespace

Result<std::shared_ptr<Container>> Container::parse(std::shared_ptr<std::vector<uint8_t>> bytes) {
  const size_t total = bytes->size();
  ETGPU_CHECK(total >= sizeof(kMagic) && std::memcmp(bytes->data(), kMagic, sizeof(kMagic)) == 0,
              "not an .etgpu file: the first 8 bytes are not the magic 'ETGPUF01'");
  Reader reader(bytes->data() + sizeof(kMagic), total - sizeof(kMagic));
  uint64_t payload_offset = 0, payload_size = 0, count = 0;
  ETGPU_CHECK(reader.read(&payload_offset) && reader.read(&payload_size) && reader.read(&count),
              ".etgpu header is truncated (", total, " bytes)");
  ETGPU_CHECK(span_fits(payload_offset, payload_size, total), ".etgpu payload [", payload_offset,
              ", +", payload_size, ") lies outside the file of ", total, " bytes");
  ETGPU_CHECK(count <= kMaxConstants, ".etgpu declares ", count, " constants; at most ",
              kMaxConstants, " are allowed");
  auto container = std::make_shared<Container>();
  container->payload_ = {bytes->data() + payload_offset, payload_size};
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t key_length = 0;
    std::string key;
    uint64_t offset = 0, size = 0;
    ETGPU_CHECK(reader.read(&key_length) && reader.read_string(key_length, &key) &&
                    reader.read(&offset) && reader.read(&size),
                ".etgpu constant table is truncated at entry ", i);
    ETGPU_CHECK(span_fits(offset, size, total), ".etgpu constant '", key, "' [", offset, ", +",
                size, ") lies outside the file of ", total, " bytes");
    ETGPU_CHECK(container->constants_.emplace(key, ByteSpan{bytes->data() + offset, size}).second,
                ".etgpu constant '", key, "' appears twice");
  }
  container->bytes_ = std::move(bytes);
  return container;
}

Result<std::shared_ptr<Container>> Container::read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  ETGPU_CHECK(file.good(), "cannot open '", path, "'");
  const std::streamsize size = file.tellg();
  ETGPU_CHECK(size >= 0, "cannot read the size of '", path, "'");
  auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(size));
  file.seekg(0);
  ETGPU_CHECK(file.read(reinterpret_cast<char*>(bytes->data()), size).good() || size == 0,
              "cannot read '", path, "'");
  return parse(std::move(bytes));
}

Result<ConstantBytes> Container::get(const std::string& key) {
  auto it = constants_.find(key);
  ETGPU_CHECK(it != constants_.end(), "constant '", key, "' is not in the .etgpu file");
  return ConstantBytes{it->second.data, it->second.size, {}};
}

}  // namespace etgpu
