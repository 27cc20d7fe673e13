// Byte-level BPE (the GPT-2 family: SmolLM, StarCoder, GPT-2) written for etgpu_llm, loaded from a
// Hugging Face tokenizer.json or from the vocabulary in a GGUF file's metadata.
//
// encode: special tokens are cut out first (longest match wins), the rest is split into pieces by
// the GPT-2 rule (optionally each digit alone first, as SmolLM does), every piece's UTF-8 bytes are
// spelled in GPT-2's byte alphabet and merged by rank. decode: the reverse spelling.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace etgpu_llm {

class BpeTokenizer {
 public:
  // Both return false and set *error on a file this tokenizer cannot represent exactly.
  bool load_tokenizer_json(const std::string& path, std::string* error);
  bool load_gguf(const std::string& path, std::string* error);

  std::vector<int32_t> encode(const std::string& text) const;
  // Raw bytes of the tokens (may end inside a UTF-8 character; see Utf8Stream).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  size_t vocab_size() const { return id_to_token_.size(); }
  bool is_special(int32_t id) const;
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  int32_t token_id(const std::string& token) const;  // -1 when absent

 private:
  bool finish(std::string* error);
  void add_merge(const std::string& left, const std::string& right);
  void encode_piece(const std::string& piece, std::vector<int32_t>* out) const;
  void encode_ordinary(const std::string& text, std::vector<int32_t>* out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // key: left + '\x01' + right
  std::vector<int32_t> special_ids_;                      // longest first
  std::vector<bool> special_;
  std::vector<int32_t> stop_ids_;
  int32_t eos_id_ = -1;
  bool split_digits_ = false;
  mutable std::unordered_map<std::string, std::vector<int32_t>> piece_cache_;
};

// Emits only complete UTF-8 characters from a byte stream, holding back a partial one.
class Utf8Stream {
 public:
  std::string push(const std::string& bytes);
  std::string flush();

 private:
  std::string pending_;
};

// The split rule, exposed for tests: pieces of text (byte offsets preserved, concatenation = text).
std::vector<std::string> split_pieces(const std::string& text, bool split_digits);

}  // namespace etgpu_llm
