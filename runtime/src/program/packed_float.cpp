#include "program/packed_float.h"

#include <cstring>

namespace etgpu {
namespace {

constexpr size_t kHeaderBytes = 16;
constexpr uint8_t kMagic[3] = {'E', 'P', 'F'};
constexpr uint8_t kVersion = 1;

// An IEEE-style float: a sign bit, then exponent_bits, then mantissa_bits (from the top).
struct FloatFormat {
  int exponent_bits = 0;
  int mantissa_bits = 0;
  int width_bytes() const { return (1 + exponent_bits + mantissa_bits) / 8; }
};

bool format_of(ir::DType dtype, FloatFormat* format) {
  switch (dtype) {
    case ir::DType::BF16: *format = {8, 7}; return true;
    case ir::DType::F16: *format = {5, 10}; return true;
    case ir::DType::F32: *format = {8, 23}; return true;
    default: return false;
  }
}

// The header's facts, once checked (layout: docs/quantization.md).
struct Header {
  FloatFormat format;
  int exponent_bits = 0;  // stored, relative to min_exponent
  int sign_bits = 0;      // 0 or 1
  uint32_t min_exponent = 0;
  uint32_t count = 0;
  int element_bits() const { return sign_bits + exponent_bits + format.mantissa_bits; }
};

uint32_t read_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

Result<Header> read_header(const uint8_t* p, size_t size, const FloatFormat& format, size_t out_bytes) {
  ETGPU_CHECK(size >= kHeaderBytes, "packed-float payload of ", size, " bytes is shorter than its ",
              kHeaderBytes, "-byte header (truncated)");
  ETGPU_CHECK(std::memcmp(p, kMagic, sizeof(kMagic)) == 0, "packed-float payload has a bad magic");
  ETGPU_CHECK(p[3] == kVersion, "packed-float version ", int{p[3]}, " is not supported (this runtime reads ",
              int{kVersion}, ")");
  ETGPU_CHECK(p[4] == format.exponent_bits && p[5] == format.mantissa_bits, "packed-float payload holds e",
              int{p[4]}, "m", int{p[5]}, " floats but the tensor's dtype is e", format.exponent_bits, "m",
              format.mantissa_bits);
  Header h;
  h.format = format;
  h.exponent_bits = p[6];
  h.sign_bits = p[7];
  h.count = read_u32(p + 8);
  h.min_exponent = p[12];
  ETGPU_CHECK(h.exponent_bits <= format.exponent_bits, "packed-float payload stores ", h.exponent_bits,
              " exponent bits; the format has ", format.exponent_bits);
  ETGPU_CHECK(h.sign_bits <= 1, "packed-float sign flag is ", h.sign_bits, ", not 0 or 1");
  ETGPU_CHECK(h.min_exponent < (1u << format.exponent_bits), "packed-float minimum exponent ", h.min_exponent,
              " does not fit the format's ", format.exponent_bits, " exponent bits");
  ETGPU_CHECK(p[13] == 0 && p[14] == 0 && p[15] == 0, "packed-float header's reserved bytes are not zero");
  const size_t width = static_cast<size_t>(format.width_bytes());
  ETGPU_CHECK(out_bytes % width == 0 && h.count == out_bytes / width, "packed-float payload holds ", h.count,
              " elements; the tensor has ", out_bytes / width, " (", out_bytes, " bytes)");
  // count < 2^32 and element_bits <= 32: the product fits 64 bits.
  const uint64_t expected = kHeaderBytes + (uint64_t{h.count} * h.element_bits() + 7) / 8;
  ETGPU_CHECK(size == expected, "packed-float payload has ", size, " bytes; its header implies ", expected,
              size < expected ? " (truncated)" : " (trailing bytes)");
  return h;
}

// Reads each element's fields from the little-endian bit stream and reassembles the float's own
// bit pattern. The stream holds exactly ceil(count * element_bits / 8) bytes (read_header checked
// it) and the loop consumes exactly that many. Returns false when some element's exponent does
// not fit the format (only a corrupt payload has one).
template <typename Word>
bool unpack(const uint8_t* in, const Header& h, Word* out) {
  const int m = h.format.mantissa_bits, d = h.exponent_bits, e = h.format.exponent_bits;
  const int element_bits = h.element_bits();
  const uint64_t element_mask = (uint64_t{1} << element_bits) - 1;
  const uint32_t mantissa_mask = (uint32_t{1} << m) - 1, relative_mask = (uint32_t{1} << d) - 1;
  uint64_t held = 0;  // bits read but not yet used, lowest first
  int held_bits = 0;
  uint32_t out_of_range = 0;
  for (uint32_t i = 0; i < h.count; ++i) {
    while (held_bits < element_bits) {
      held |= uint64_t{*in++} << held_bits;
      held_bits += 8;
    }
    const uint32_t code = static_cast<uint32_t>(held & element_mask);
    held >>= element_bits;
    held_bits -= element_bits;
    const uint32_t exponent = h.min_exponent + ((code >> m) & relative_mask);
    const uint32_t sign = code >> (m + d);  // 0 when signs are not stored
    out_of_range |= exponent >> e;
    out[i] = static_cast<Word>(sign << (e + m) | exponent << m | (code & mantissa_mask));
  }
  return out_of_range == 0;
}

}  // namespace

Status decode_packed_float(const uint8_t* stored, size_t stored_size, ir::DType dtype, void* out,
                           size_t out_bytes) {
  FloatFormat format;
  ETGPU_CHECK(format_of(dtype, &format), "packed float holds F32, F16 or BF16 elements, not dtype ",
              static_cast<int>(dtype));
  auto header = read_header(stored, stored_size, format, out_bytes);
  ETGPU_RETURN_IF_ERROR(header.status());
  const uint8_t* stream = stored + kHeaderBytes;
  const bool fits = format.width_bytes() == 2 ? unpack(stream, header.value(), static_cast<uint16_t*>(out))
                                              : unpack(stream, header.value(), static_cast<uint32_t*>(out));
  ETGPU_CHECK(fits, "packed-float payload has an element whose exponent exceeds the format (corrupt payload)");
  return Status::ok();
}

}  // namespace etgpu
