#include "gguf_meta.h"

#include <cstring>
#include <fstream>

namespace etgpu_llm {
namespace {

// GGUF value types (ggml's gguf.h).
enum GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

size_t scalar_size(uint32_t type) {
  switch (type) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: return 8;
    default: return 0;
  }
}

// Sequential little-endian reader over a stream with the remaining size known, so that lengths
// read from the file can be checked before anything is allocated for them.
class Reader {
 public:
  Reader(std::ifstream& in, uint64_t size) : in_(in), remaining_(size) {}

  bool bytes(void* dst, uint64_t n) {
    if (n > remaining_) return fail("truncated file");
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_) return fail("read error");
    remaining_ -= n;
    return true;
  }
  template <typename T>
  bool pod(T* value) { return bytes(value, sizeof(T)); }

  bool string(std::string* out) {
    uint64_t length = 0;
    if (!pod(&length)) return false;
    if (length > remaining_) return fail("string length past the end of the file");
    out->resize(length);
    return length == 0 || bytes(&(*out)[0], length);
  }

  bool scalar(uint32_t type, GgufValue* out) {
    uint8_t raw[8] = {};
    const size_t size = scalar_size(type);
    if (size == 0) return fail("unknown value type");
    if (!bytes(raw, size)) return false;
    out->kind = type == kF32 || type == kF64 ? GgufValue::Kind::Float
              : type == kBool ? GgufValue::Kind::Bool : GgufValue::Kind::Int;
    switch (type) {
      case kU8: out->integer = raw[0]; break;
      case kI8: out->integer = static_cast<int8_t>(raw[0]); break;
      case kBool: out->integer = raw[0] != 0; break;
      case kU16: { uint16_t v; std::memcpy(&v, raw, 2); out->integer = v; break; }
      case kI16: { int16_t v; std::memcpy(&v, raw, 2); out->integer = v; break; }
      case kU32: { uint32_t v; std::memcpy(&v, raw, 4); out->integer = v; break; }
      case kI32: { int32_t v; std::memcpy(&v, raw, 4); out->integer = v; break; }
      case kF32: { float v; std::memcpy(&v, raw, 4); out->real = v; break; }
      case kU64: { uint64_t v; std::memcpy(&v, raw, 8); out->integer = static_cast<int64_t>(v); break; }
      case kI64: { int64_t v; std::memcpy(&v, raw, 8); out->integer = v; break; }
      case kF64: { double v; std::memcpy(&v, raw, 8); out->real = v; break; }
      default: break;
    }
    return true;
  }

  bool array(GgufValue* out) {
    uint32_t type = 0;
    uint64_t count = 0;
    if (!pod(&type) || !pod(&count)) return false;
    if (type == kString) {
      if (count > remaining_ / 8) return fail("array count past the end of the file");
      out->kind = GgufValue::Kind::StringArray;
      out->strings.resize(count);
      for (auto& s : out->strings)
        if (!string(&s)) return false;
      return true;
    }
    const size_t size = scalar_size(type);
    if (size == 0) return fail("unsupported array element type");  // nested arrays: not used by tokenizers
    if (count > remaining_ / size) return fail("array count past the end of the file");
    const bool integral = type != kF32 && type != kF64;
    out->kind = integral ? GgufValue::Kind::IntArray : GgufValue::Kind::OtherArray;
    if (integral) out->integers.reserve(count);
    for (uint64_t i = 0; i < count; ++i) {
      GgufValue element;
      if (!scalar(type, &element)) return false;
      if (integral) out->integers.push_back(element.integer);
    }
    return true;
  }

  bool value(uint32_t type, GgufValue* out) {
    if (type == kString) {
      out->kind = GgufValue::Kind::String;
      return string(&out->string);
    }
    if (type == kArray) return array(out);
    return scalar(type, out);
  }

  const std::string& error() const { return error_; }

 private:
  bool fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  std::ifstream& in_;
  uint64_t remaining_;
  std::string error_;
};

}  // namespace

const GgufValue* GgufMetadata::find(const std::string& key) const {
  auto it = values.find(key);
  return it == values.end() ? nullptr : &it->second;
}

bool read_gguf_metadata(const std::string& path, GgufMetadata* out, std::string* error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  Reader reader(in, size);
  char magic[4];
  uint64_t tensor_count = 0, kv_count = 0;
  if (!reader.bytes(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) {
    *error = path + ": not a GGUF file";
    return false;
  }
  if (!reader.pod(&out->version) || !reader.pod(&tensor_count) || !reader.pod(&kv_count)) {
    *error = path + ": " + reader.error();
    return false;
  }
  if (out->version < 2 || out->version > 3) {
    *error = path + ": GGUF version " + std::to_string(out->version) + " is not supported (2 or 3)";
    return false;
  }
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key;
    uint32_t type = 0;
    GgufValue value;
    if (!reader.string(&key) || !reader.pod(&type) || !reader.value(type, &value)) {
      *error = path + ": metadata entry " + std::to_string(i) + (key.empty() ? "" : " (" + key + ")") + ": " +
               reader.error();
      return false;
    }
    out->values[key] = std::move(value);
  }
  return true;
}

}  // namespace etgpu_llm
