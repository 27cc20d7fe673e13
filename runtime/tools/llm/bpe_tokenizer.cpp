#include "bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "gguf_meta.h"
#include "json.h"
#include "unicode.h"

namespace etgpu_llm {
namespace {

// Names that end a turn or a document in common vocabularies; generation stops on any present
// besides the declared eos (same list as python/etgpu/llm/tokenizer.py).
const char* const kStopNames[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>",
                                  "<end_of_turn>"};

// GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the others are moved to
// U+0100.. in byte order, so every byte is one visible character in the vocabulary.
struct ByteAlphabet {
  std::string spelled[256];                      // byte -> UTF-8 of its character
  std::unordered_map<uint32_t, uint8_t> reverse;  // character -> byte
  ByteAlphabet() {
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256 + extra++;
      append_utf8(cp, &spelled[b]);
      reverse[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet instance;
  return instance;
}

bool is_other(uint32_t cp) { return !is_space(cp) && !is_letter(cp) && !is_number(cp); }

// Code points the GPT-2 rule takes at i (at least 1), within [i, end):
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
size_t gpt2_match(const std::vector<CodePoint>& cps, size_t i, size_t end) {
  auto at = [&](size_t k) -> uint32_t { return k < end ? cps[k].cp : 0; };
  if (at(i) == '\'') {
    static const char* const suffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (const char* suffix : suffixes) {
      size_t n = 0;
      while (suffix[n] && at(i + 1 + n) == static_cast<uint32_t>(suffix[n])) ++n;
      if (!suffix[n]) return 1 + n;
    }
  }
  const size_t start = at(i) == ' ' ? i + 1 : i;  // the optional leading space
  for (bool (*in_class)(uint32_t) : {is_letter, is_number, is_other}) {
    if (start < end && in_class(cps[start].cp)) {
      size_t k = start;
      while (k < end && in_class(cps[k].cp)) ++k;
      return k - i;
    }
  }
  size_t k = i;
  while (k < end && is_space(cps[k].cp)) ++k;
  if (k == end || k - i == 1) return k - i;  // to the end, or the lone \s+ case
  return k - i - 1;  // leave the last space to prefix the next word (the (?!\S) lookahead)
}

std::string slice(const std::string& text, const std::vector<CodePoint>& cps, size_t a, size_t b) {
  const size_t begin = cps[a].offset;
  const size_t end = b < cps.size() ? cps[b].offset : text.size();
  return text.substr(begin, end - begin);
}

std::string read_file(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return {};
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// Whether a tokenizer.json pre_tokenizer is one this implementation reproduces, and its digit mode.
bool supported_pre_tokenizer(const JsonValue* pre, bool* split_digits, std::string* error) {
  auto byte_level = [](const JsonValue& v) {
    const JsonValue* type = v.find("type");
    const JsonValue* regex = v.find("use_regex");
    const JsonValue* prefix = v.find("add_prefix_space");
    return type && type->string == "ByteLevel" && (!regex || regex->boolean) && (!prefix || !prefix->boolean);
  };
  auto digits = [](const JsonValue& v) {
    const JsonValue* type = v.find("type");
    const JsonValue* individual = v.find("individual_digits");
    return type && type->string == "Digits" && individual && individual->boolean;
  };
  *split_digits = false;
  if (pre && pre->is_object() && byte_level(*pre)) return true;
  const JsonValue* list = pre && pre->is_object() ? pre->find("pretokenizers") : nullptr;
  if (list && list->is_array() && list->array.size() == 2 && digits(list->array[0]) && byte_level(list->array[1])) {
    *split_digits = true;
    return true;
  }
  *error = "unsupported pre_tokenizer (supported: ByteLevel with the GPT-2 rule, or Digits(individual) then ByteLevel)";
  return false;
}

}  // namespace

std::vector<std::string> split_pieces(const std::string& text, bool split_digits) {
  const std::vector<CodePoint> cps = decode_utf8(text);
  std::vector<std::string> pieces;
  size_t chunk_begin = 0;
  while (chunk_begin < cps.size()) {
    // A chunk ends before a number code point; with split_digits each one is its own chunk.
    size_t chunk_end = chunk_begin;
    if (split_digits && is_number(cps[chunk_begin].cp)) {
      chunk_end = chunk_begin + 1;
    } else {
      while (chunk_end < cps.size() && !(split_digits && is_number(cps[chunk_end].cp))) ++chunk_end;
    }
    for (size_t i = chunk_begin; i < chunk_end;) {
      const size_t n = gpt2_match(cps, i, chunk_end);
      pieces.push_back(slice(text, cps, i, i + n));
      i += n;
    }
    chunk_begin = chunk_end;
  }
  return pieces;
}

void BpeTokenizer::add_merge(const std::string& left, const std::string& right) {
  const std::string key = left + '\x01' + right;
  merge_rank_.emplace(key, static_cast<int32_t>(merge_rank_.size()));
}

bool BpeTokenizer::load_tokenizer_json(const std::string& path, std::string* error) {
  JsonValue root;
  const std::string text = read_file(path, error);
  if (!error->empty()) return false;
  if (!parse_json(text, &root, error)) return (*error = path + ": " + *error), false;
  const JsonValue* model = root.find("model");
  const JsonValue* type = model ? model->find("type") : nullptr;
  if (!type || type->string != "BPE") return (*error = path + ": model.type is not BPE"), false;
  const JsonValue* ignore = model->find("ignore_merges");
  if (ignore && ignore->boolean) return (*error = path + ": ignore_merges=true is not supported"), false;
  if (!supported_pre_tokenizer(root.find("pre_tokenizer"), &split_digits_, error)) return (*error = path + ": " + *error), false;
  const JsonValue* vocab = model->find("vocab");
  const JsonValue* merges = model->find("merges");
  if (!vocab || !vocab->is_object() || !merges || !merges->is_array()) return (*error = path + ": model.vocab/merges missing"), false;
  for (const auto& entry : vocab->object) vocab_[entry.first] = static_cast<int32_t>(entry.second.number);
  for (const JsonValue& merge : merges->array) {
    if (merge.is_array() && merge.array.size() == 2) {  // newer files: ["a", "b"]
      add_merge(merge.array[0].string, merge.array[1].string);
    } else if (merge.is_string() && merge.string.find(' ') != std::string::npos) {  // older: "a b"
      const size_t space = merge.string.find(' ');
      add_merge(merge.string.substr(0, space), merge.string.substr(space + 1));
    } else {
      return (*error = path + ": malformed merge"), false;
    }
  }
  const JsonValue* added = root.find("added_tokens");
  for (const JsonValue& token : added && added->is_array() ? added->array : std::vector<JsonValue>{}) {
    const JsonValue* id = token.find("id");
    const JsonValue* content = token.find("content");
    const JsonValue* special = token.find("special");
    if (!id || !content) return (*error = path + ": malformed added token"), false;
    const int32_t index = static_cast<int32_t>(id->number);
    vocab_[content->string] = index;
    special_ids_.push_back(index);
    if (special_.size() <= static_cast<size_t>(index)) special_.resize(index + 1, false);
    special_[index] = special && special->boolean;
  }
  // bos/eos live in tokenizer_config.json beside tokenizer.json (written by `export-tokenizer`).
  std::string config_error;
  const std::string config_path = path.substr(0, path.find_last_of('/') + 1) + "tokenizer_config.json";
  const std::string config_text = read_file(config_path, &config_error);
  JsonValue config;
  if (config_error.empty() && parse_json(config_text, &config, &config_error)) {
    const JsonValue* eos = config.find("eos_token");
    if (eos && eos->is_object()) eos = eos->find("content");
    if (eos && eos->is_string() && vocab_.count(eos->string)) eos_id_ = vocab_[eos->string];
  }
  return finish(error);
}

bool BpeTokenizer::load_gguf(const std::string& path, std::string* error) {
  GgufMetadata meta;
  if (!read_gguf_metadata(path, &meta, error)) return false;
  const GgufValue* model = meta.find("tokenizer.ggml.model");
  const GgufValue* pre = meta.find("tokenizer.ggml.pre");
  const GgufValue* tokens = meta.find("tokenizer.ggml.tokens");
  const GgufValue* merges = meta.find("tokenizer.ggml.merges");
  const GgufValue* types = meta.find("tokenizer.ggml.token_type");
  const GgufValue* eos = meta.find("tokenizer.ggml.eos_token_id");
  if (!model || model->string != "gpt2") return (*error = path + ": tokenizer model is not gpt2 (byte-level BPE)"), false;
  const std::string rule = pre ? pre->string : "default";
  if (rule == "smollm" || rule == "starcoder" || rule == "codeshell") split_digits_ = true;
  else if (rule != "default" && rule != "gpt-2" && rule != "gpt2")
    return (*error = path + ": pre-tokenizer '" + rule + "' is not supported"), false;
  if (!tokens || tokens->kind != GgufValue::Kind::StringArray || !merges || merges->kind != GgufValue::Kind::StringArray)
    return (*error = path + ": tokens/merges missing"), false;
  for (size_t i = 0; i < tokens->strings.size(); ++i) vocab_[tokens->strings[i]] = static_cast<int32_t>(i);
  for (const std::string& merge : merges->strings) {
    const size_t space = merge.find(' ');
    if (space == std::string::npos) return (*error = path + ": malformed merge"), false;
    add_merge(merge.substr(0, space), merge.substr(space + 1));
  }
  if (types && types->kind == GgufValue::Kind::IntArray && types->integers.size() == tokens->strings.size()) {
    special_.assign(tokens->strings.size(), false);
    for (size_t i = 0; i < types->integers.size(); ++i) {
      if (types->integers[i] != 3 && types->integers[i] != 4) continue;  // 3 control, 4 user-defined
      special_ids_.push_back(static_cast<int32_t>(i));
      special_[i] = types->integers[i] == 3;
    }
  }
  if (eos && eos->kind == GgufValue::Kind::Int) eos_id_ = static_cast<int32_t>(eos->integer);
  return finish(error);
}

bool BpeTokenizer::finish(std::string* error) {
  int32_t max_id = -1;
  for (const auto& entry : vocab_) {
    if (entry.second < 0 || entry.second > (1 << 24)) return (*error = "token id out of range"), false;
    max_id = std::max(max_id, entry.second);
  }
  id_to_token_.assign(max_id + 1, std::string());
  for (const auto& entry : vocab_) id_to_token_[entry.second] = entry.first;
  special_.resize(id_to_token_.size(), false);
  for (const auto& merge : merge_rank_) {
    std::string joined = merge.first;
    joined.erase(joined.find('\x01'), 1);
    if (!vocab_.count(joined)) return (*error = "a merge's result is not in the vocabulary: " + joined), false;
  }
  std::sort(special_ids_.begin(), special_ids_.end(), [&](int32_t a, int32_t b) {
    return id_to_token_[a].size() != id_to_token_[b].size() ? id_to_token_[a].size() > id_to_token_[b].size() : a < b;
  });
  if (eos_id_ >= 0 && eos_id_ < static_cast<int32_t>(id_to_token_.size())) stop_ids_.push_back(eos_id_);
  for (const char* name : kStopNames) {
    const int32_t id = token_id(name);
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  }
  std::sort(stop_ids_.begin(), stop_ids_.end());
  return true;
}

int32_t BpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id];
}

void BpeTokenizer::encode_piece(const std::string& piece, std::vector<int32_t>* out) const {
  auto cached = piece_cache_.find(piece);
  if (cached != piece_cache_.end()) {
    out->insert(out->end(), cached->second.begin(), cached->second.end());
    return;
  }
  std::vector<std::string> symbols;
  for (const unsigned char b : piece) symbols.push_back(alphabet().spelled[b]);
  while (symbols.size() > 1) {
    // The lowest-ranked adjacent pair is merged everywhere it occurs, left to right.
    int32_t best = std::numeric_limits<int32_t>::max();
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(symbols[i] + '\x01' + symbols[i + 1]);
      if (it != merge_rank_.end() && it->second < best) best = it->second, best_at = i;
    }
    if (best == std::numeric_limits<int32_t>::max()) break;
    const std::string left = symbols[best_at], right = symbols[best_at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols.swap(merged);
  }
  std::vector<int32_t> ids;
  // A byte with no token of its own (SmolLM2 has none for some control bytes) is dropped, which is
  // what the tokenizers library does for a BPE model without unk token or byte fallback.
  for (const std::string& symbol : symbols) {
    auto it = vocab_.find(symbol);
    if (it != vocab_.end()) ids.push_back(it->second);
  }
  out->insert(out->end(), ids.begin(), ids.end());
  piece_cache_.emplace(piece, std::move(ids));
}

void BpeTokenizer::encode_ordinary(const std::string& text, std::vector<int32_t>* out) const {
  for (const std::string& piece : split_pieces(text, split_digits_)) encode_piece(piece, out);
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  size_t segment = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t matched = -1;
    for (const int32_t id : special_ids_) {
      if (text.compare(i, id_to_token_[id].size(), id_to_token_[id]) == 0) {
        matched = id;
        break;
      }
    }
    if (matched < 0) {
      ++i;
      continue;
    }
    encode_ordinary(text.substr(segment, i - segment), &ids);
    ids.push_back(matched);
    i += id_to_token_[matched].size();
    segment = i;
  }
  encode_ordinary(text.substr(segment), &ids);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || (skip_special && is_special(id))) continue;
    const std::string& token = id_to_token_[id];
    // A token spelled entirely in the byte alphabet maps back to bytes; any other (an added token
    // with characters outside it) is its own UTF-8, as the tokenizers library's ByteLevel decoder does.
    std::string raw;
    bool spelled = true;
    for (const CodePoint& cp : decode_utf8(token)) {
      auto it = alphabet().reverse.find(cp.cp);
      if (it == alphabet().reverse.end()) {
        spelled = false;
        break;
      }
      raw.push_back(static_cast<char>(it->second));
    }
    bytes += spelled ? raw : token;
  }
  return bytes;
}

std::string Utf8Stream::push(const std::string& bytes) {
  pending_ += bytes;
  const size_t ready = complete_utf8_prefix(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace etgpu_llm
