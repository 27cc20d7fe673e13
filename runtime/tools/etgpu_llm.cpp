// etgpu_llm: text generation with an exported LLM (.etgpu with forward(tokens [1, T] int64,
// positions [T] int64) -> last-token logits [1, 1, V], the KV cache inside the model).
//   etgpu_llm MODEL.etgpu --tokenizer FILE.gguf|tokenizer.json --prompt TEXT [--max-new-tokens N]
//             [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device auto|cuda|cpu]
//   etgpu_llm --tokenizer FILE --tokenize-only STRINGS.json
//             (a JSON array of strings in; one line {"ids": [...], "text": decode(ids)} per string out)
// Text streams to stdout as tokens are chosen; statistics go to stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cpu/cpu_common.h"
#include "etgpu/model.h"
#include "exec/executor.h"
#include "llm/bpe_tokenizer.h"
#include "llm/json.h"
#include "llm/sampler.h"

namespace {

using etgpu_llm::BpeTokenizer;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model, tokenizer, prompt, tokenize_only;
  std::string device = "auto";
  int max_new_tokens = 128;
  etgpu_llm::SamplingOptions sampling;
};

int usage() {
  std::fprintf(stderr,
               "usage: etgpu_llm MODEL.etgpu --tokenizer FILE.gguf|tokenizer.json --prompt TEXT\n"
               "                 [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
               "                 [--device auto|cuda|cpu]\n"
               "       etgpu_llm --tokenizer FILE --tokenize-only STRINGS.json\n");
  return 2;
}

bool parse_args(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--tokenizer" && has_value) o->tokenizer = argv[++i];
    else if (arg == "--prompt" && has_value) o->prompt = argv[++i];
    else if (arg == "--tokenize-only" && has_value) o->tokenize_only = argv[++i];
    else if (arg == "--device" && has_value) o->device = argv[++i];
    else if (arg == "--max-new-tokens" && has_value) o->max_new_tokens = std::atoi(argv[++i]);
    else if (arg == "--temperature" && has_value) o->sampling.temperature = std::strtof(argv[++i], nullptr);
    else if (arg == "--top-k" && has_value) o->sampling.top_k = std::atoi(argv[++i]);
    else if (arg == "--top-p" && has_value) o->sampling.top_p = std::strtof(argv[++i], nullptr);
    else if (arg == "--seed" && has_value) o->sampling.seed = std::strtoull(argv[++i], nullptr, 10);
    else if (arg.rfind("--", 0) != 0 && o->model.empty()) o->model = arg;
    else return false;
  }
  if (o->tokenizer.empty()) return false;
  if (!o->tokenize_only.empty()) return true;
  return !o->model.empty() && !o->prompt.empty() && o->max_new_tokens >= 1 && o->sampling.top_p > 0.f &&
         o->sampling.top_p <= 1.f && o->sampling.top_k >= 0 && o->sampling.temperature >= 0.f;
}

bool load_tokenizer(const std::string& path, BpeTokenizer* tokenizer) {
  std::string error;
  const bool gguf = path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
  if (gguf ? tokenizer->load_gguf(path, &error) : tokenizer->load_tokenizer_json(path, &error)) return true;
  std::fprintf(stderr, "etgpu_llm: tokenizer: %s\n", error.c_str());
  return false;
}

int tokenize_only(const BpeTokenizer& tokenizer, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  etgpu_llm::JsonValue strings;
  std::string error;
  if (!in || !etgpu_llm::parse_json(content.str(), &strings, &error) || !strings.is_array()) {
    std::fprintf(stderr, "etgpu_llm: %s: expected a JSON array of strings %s\n", path.c_str(), error.c_str());
    return 1;
  }
  for (const auto& value : strings.array) {
    const std::vector<int32_t> ids = tokenizer.encode(value.string);
    std::string line = "{\"ids\": [";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? ", " : "") + std::to_string(ids[i]);
    line += "], \"text\": " + etgpu_llm::json_quote(tokenizer.decode(ids)) + "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return 0;
}

// One forward call; fills logits (as float, whatever the model's output dtype).
etgpu::Status forward(etgpu::Executor& exec, const std::vector<int64_t>& tokens, int64_t first_position,
                      std::vector<float>* logits) {
  const int64_t count = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> positions(tokens.size());
  for (int64_t i = 0; i < count; ++i) positions[i] = first_position + i;
  const int64_t token_shape[2] = {1, count};
  const int64_t position_shape[1] = {count};
  std::vector<etgpu::HostTensor> inputs = {{tokens.data(), etgpu::DType::I64, 2, token_shape},
                                           {positions.data(), etgpu::DType::I64, 1, position_shape}};
  etgpu::Status status = exec.execute(inputs);
  if (!status.is_ok()) return status;
  int64_t elements = 1;
  for (int64_t d : exec.output_shape(0)) elements *= d;
  const etgpu::DType dtype = exec.output_dtype(0);
  std::vector<uint8_t> raw(static_cast<size_t>(elements) * etgpu::dtype_size(dtype));
  status = exec.read_output(0, raw.data(), raw.size());
  if (!status.is_ok()) return status;
  logits->resize(static_cast<size_t>(elements));
  for (int64_t i = 0; i < elements; ++i) (*logits)[i] = static_cast<float>(etgpu::cpu::load(raw.data(), dtype, i));
  return status;
}

// Checks the model's signature and returns its cache capacity (the token dim's upper bound), or -1.
int64_t cache_capacity(etgpu::Executor& exec) {
  if (exec.num_inputs() != 2 || exec.num_outputs() < 1 || exec.input_dtype(0) != etgpu::DType::I64 ||
      exec.input_dtype(1) != etgpu::DType::I64 || exec.max_input_shape(0).size() != 2) {
    std::fprintf(stderr, "etgpu_llm: the model is not an LLM export (expected forward(tokens [1, T] int64, "
                         "positions [T] int64) -> logits)\n");
    return -1;
  }
  return exec.max_input_shape(0)[1];
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void print_stats(size_t prompt_tokens, size_t generated, double ttft, double prefill, double decode,
                 const std::string& stats_json) {
  std::fprintf(stderr, "prompt %zu tok, generated %zu tok | TTFT %.1f ms | prefill %.1f tok/s | decode %.1f tok/s",
               prompt_tokens, generated, ttft * 1e3, prefill > 0 ? prompt_tokens / prefill : 0.0,
               generated > 1 && decode > 0 ? (generated - 1) / decode : 0.0);
  etgpu_llm::JsonValue stats;
  std::string error;
  if (etgpu_llm::parse_json(stats_json, &stats, &error)) {
    const etgpu_llm::JsonValue* engine = stats.find("engine");
    const etgpu_llm::JsonValue* peak = stats.find("device_peak_bytes");
    // On the CPU engine the "device" is host memory; the figure is only meaningful on a GPU.
    if (engine && engine->string == "cuda" && peak) std::fprintf(stderr, " | peak device memory %.1f MiB", peak->number / 1048576.0);
  }
  std::fprintf(stderr, "\nstats: %s\n", stats_json.c_str());
}

int generate(const Options& o, const BpeTokenizer& tokenizer) {
  const std::vector<int32_t> prompt = tokenizer.encode(o.prompt);
  if (prompt.empty()) return std::fprintf(stderr, "etgpu_llm: the prompt has no tokens\n"), 1;
  etgpu::ModelOptions model_options;
  model_options.device = o.device;
  auto opened = etgpu::Model::open_file(o.model, model_options);
  if (!opened.is_ok()) return std::fprintf(stderr, "etgpu_llm: %s\n", opened.status().message().c_str()), 1;
  etgpu::Executor& exec = opened.value()->executor();
  const int64_t capacity = cache_capacity(exec);
  if (capacity < 0) return 1;
  // The last new token is sampled, never fed back, so it needs no cache slot.
  const int64_t needed = static_cast<int64_t>(prompt.size()) + o.max_new_tokens - 1;
  if (needed > capacity) {
    std::fprintf(stderr, "etgpu_llm: prompt (%zu tokens) + max-new-tokens (%d) needs %lld cache positions but the "
                 "model was exported with max_seq_len=%lld\n", prompt.size(), o.max_new_tokens,
                 static_cast<long long>(needed), static_cast<long long>(capacity));
    return 1;
  }
  etgpu_llm::Sampler sampler(o.sampling);
  etgpu_llm::Utf8Stream stream;
  const std::vector<int32_t>& stops = tokenizer.stop_ids();
  std::vector<float> logits;
  std::vector<int64_t> step(prompt.begin(), prompt.end());
  int64_t position = 0;
  size_t generated = 0;
  double ttft = 0, prefill = 0;
  const Clock::time_point start = Clock::now();
  Clock::time_point decode_start = start;
  while (generated < static_cast<size_t>(o.max_new_tokens)) {
    etgpu::Status status = forward(exec, step, position, &logits);
    if (!status.is_ok()) return std::fprintf(stderr, "\netgpu_llm: %s\n", status.message().c_str()), 1;
    if (generated == 0) prefill = seconds_since(start);
    const int32_t token = sampler.sample(logits);
    if (generated++ == 0) ttft = seconds_since(start), decode_start = Clock::now();
    position += static_cast<int64_t>(step.size());
    step.assign(1, token);
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) break;
    const std::string text = stream.push(tokenizer.decode({token}, /*skip_special=*/true));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  const double decode = seconds_since(decode_start);
  const std::string rest = stream.flush() + "\n";
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fflush(stdout);  // the text ends before the statistics on a shared terminal
  print_stats(prompt.size(), generated, ttft, prefill, decode, opened.value()->stats_json());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, &options)) return usage();
  BpeTokenizer tokenizer;
  if (!load_tokenizer(options.tokenizer, &tokenizer)) return 1;
  if (!options.tokenize_only.empty()) return tokenize_only(tokenizer, options.tokenize_only);
  return generate(options, tokenizer);
}
