// The three character classes the GPT-2 split rule needs (\p{L}, \p{N}, \s) and UTF-8 decoding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace etgpu_llm {

bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
bool is_space(uint32_t cp);  // Unicode White_Space, what \s means in the tokenizers' regex engine

struct CodePoint {
  uint32_t cp;
  uint32_t offset;  // byte offset in the source string
  uint32_t length;  // bytes
};

// Code points of s; an invalid byte becomes U+FFFD of length 1 (so offsets still cover s).
std::vector<CodePoint> decode_utf8(const std::string& s);

// Length of the longest prefix of s that ends on a complete UTF-8 character.
size_t complete_utf8_prefix(const std::string& s);

}  // namespace etgpu_llm
