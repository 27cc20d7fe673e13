// Next-token choice from logits: greedy (temperature 0), or temperature with optional top-k and
// top-p (nucleus) cuts, drawn from a seeded generator so a run can be repeated.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace etgpu_llm {

struct SamplingOptions {
  float temperature = 0.f;  // 0 = argmax
  int top_k = 0;            // 0 = no limit
  float top_p = 1.f;        // 1 = no cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}
  int32_t sample(const std::vector<float>& logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace etgpu_llm
