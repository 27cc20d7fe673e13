// A small JSON reader for tokenizer.json / tokenizer_config.json / stats JSON: values, objects
// that keep their order (vocabularies are read in order), \u escapes with surrogate pairs. The
// input is untrusted: errors are reported with an offset, nesting depth is bounded.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace etgpu_llm {

struct JsonValue {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  // The member named key, or nullptr (objects only).
  const JsonValue* find(const std::string& key) const;
  bool is_string() const { return type == Type::String; }
  bool is_number() const { return type == Type::Number; }
  bool is_array() const { return type == Type::Array; }
  bool is_object() const { return type == Type::Object; }
};

// Parses text; on failure returns false and sets *error.
bool parse_json(const std::string& text, JsonValue* out, std::string* error);

// A JSON string literal (quotes included) for output.
std::string json_quote(const std::string& utf8);

// Appends code point cp as UTF-8.
void append_utf8(unsigned cp, std::string* out);

}  // namespace etgpu_llm
