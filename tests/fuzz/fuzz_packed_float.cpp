// libFuzzer target: an untrusted PackedFloat payload (a quantized weight's scales) straight into
// decode_packed_float, which the container fuzzer reaches only through a valid file. Input: one
// byte choosing the tensor's dtype (F32, F16, BF16, or I32, which must be refused), one byte
// choosing its element count (0: the count the payload's header declares, when that is at most
// kMaxElements; else the byte's value, which the decoder must check against the header), then
// the payload. ASan sees the output buffer's exact size, so any write past it is a finding.
#include <cstring>
#include <vector>

#include "program/packed_float.h"

namespace {

constexpr size_t kMaxElements = size_t{1} << 18;
constexpr size_t kCountOffset = 8;  // the header's u32 element count (docs/quantization.md)

size_t element_count(uint8_t choice, const uint8_t* payload, size_t size) {
  if (choice != 0) return choice;
  if (size < kCountOffset + 4) return 1;
  uint32_t declared = 0;
  for (int i = 3; i >= 0; --i) declared = declared << 8 | payload[kCountOffset + i];
  return declared <= kMaxElements ? declared : 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using etgpu::ir::DType;
  if (size < 2) return 0;
  static const DType kDtypes[] = {DType::F32, DType::F16, DType::BF16, DType::I32};
  const DType dtype = kDtypes[data[0] % 4];
  const size_t width = dtype == DType::F16 || dtype == DType::BF16 ? 2 : 4;
  const uint8_t* payload = data + 2;
  const size_t payload_size = size - 2;
  std::vector<uint8_t> out(element_count(data[1], payload, payload_size) * width);
  (void)etgpu::decode_packed_float(payload, payload_size, dtype, out.data(), out.size());
  return 0;
}
