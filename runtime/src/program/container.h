// The .etgpu container: one file holding an IR payload and the constants it names, for running
// without ExecuTorch. Layout (little endian, offsets from the start of the file):
//   "ETGPUF01" | u64 payload_offset | u64 payload_size | u64 num_constants
//   num_constants x { u32 key_len | key bytes | u64 offset | u64 size }
//   payload and constant bytes, each 64-byte aligned.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "program/constants.h"

namespace etgpu {

struct ByteSpan {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

class Container : public ConstantSource {
 public:
  // Parses `bytes` (which the container keeps alive); every offset is bounds-checked.
  static Result<std::shared_ptr<Container>> parse(std::shared_ptr<std::vector<uint8_t>> bytes);
  static Result<std::shared_ptr<Container>> read_file(const std::string& path);

  ByteSpan payload() const { return payload_; }
  Result<ConstantBytes> get(const std::string& key) override;

 private:
  std::shared_ptr<std::vector<uint8_t>> bytes_;
  ByteSpan payload_;
  std::map<std::string, ByteSpan> constants_;
};

}  // namespace etgpu
