// Reads the metadata (key/value) section of a GGUF file, the part that holds the tokenizer; the
// tensor data is never touched. The file is untrusted: every length is checked against the bytes
// that remain, so a truncated or hostile file gives an error, not a huge allocation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace etgpu_llm {

struct GgufValue {
  enum class Kind { Int, Float, Bool, String, StringArray, IntArray, OtherArray };
  Kind kind = Kind::Int;
  int64_t integer = 0;
  double real = 0.0;
  std::string string;
  std::vector<std::string> strings;
  std::vector<int64_t> integers;
};

struct GgufMetadata {
  uint32_t version = 0;
  std::map<std::string, GgufValue> values;

  const GgufValue* find(const std::string& key) const;
};

// Parses the header and every key/value pair of the GGUF file at path.
bool read_gguf_metadata(const std::string& path, GgufMetadata* out, std::string* error);

}  // namespace etgpu_llm
