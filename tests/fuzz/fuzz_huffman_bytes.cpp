// libFuzzer target: an untrusted HuffmanBytes payload (a quantized weight's codes) straight into
// decode_huffman_bytes, which the container fuzzer reaches only through a valid file. Input: one
// byte choosing the decoder's thread limit (0..3; 0: the hardware's), one byte choosing the
// tensor's size (0: the decoded size the payload's header declares, when that is at most
// kMaxBytes; else the byte's value, which the decoder must check against the header), then the
// payload. ASan sees the output buffer's exact size, so any write past it is a finding.
#include <vector>

#include "program/huffman_bytes.h"

namespace {

constexpr size_t kMaxBytes = size_t{1} << 20;
constexpr size_t kCountOffset = 8;  // the header's u64 decoded size (docs/quantization.md)

size_t output_bytes(uint8_t choice, const uint8_t* payload, size_t size) {
  if (choice != 0) return choice;
  if (size < kCountOffset + 8) return 1;
  uint64_t declared = 0;
  for (int i = 7; i >= 0; --i) declared = declared << 8 | payload[kCountOffset + i];
  return declared <= kMaxBytes ? declared : 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const unsigned threads = data[0] % 4;
  const uint8_t* payload = data + 2;
  const size_t payload_size = size - 2;
  std::vector<uint8_t> out(output_bytes(data[1], payload, payload_size));
  (void)etgpu::decode_huffman_bytes(payload, payload_size, out.data(), out.size(), threads);
  return 0;
}
