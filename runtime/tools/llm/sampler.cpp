#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace etgpu_llm {

int32_t Sampler::sample(const std::vector<float>& logits) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (options_.temperature <= 0.f)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  // Candidates sorted by logit, best first; top-k keeps a prefix of them.
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int32_t keep = options_.top_k > 0 ? std::min(options_.top_k, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  order.resize(keep);
  // Softmax over the kept candidates, max-subtracted so exp cannot overflow.
  std::vector<double> probs(keep);
  const double top = logits[order[0]];
  double total = 0;
  for (int32_t i = 0; i < keep; ++i) total += probs[i] = std::exp((logits[order[i]] - top) / options_.temperature);
  // Nucleus: the smallest best-first prefix whose mass reaches top_p (at least one candidate).
  int32_t kept = keep;
  if (options_.top_p < 1.f) {
    double mass = 0;
    for (int32_t i = 0; i < keep; ++i) {
      if (mass >= options_.top_p * total) {
        kept = i;
        break;
      }
      mass += probs[i];
    }
  }
  std::discrete_distribution<int32_t> pick(probs.begin(), probs.begin() + kept);
  return order[pick(rng_)];
}

}  // namespace etgpu_llm
