// Scaled dot-product attention, the reference for the CUDA kernels: one query row at a time,
// scores and the weighted sum of values in fp32, softmax with the row maximum subtracted.
//
// Grouped-query attention: query head h reads key/value head h / (H / Hkv), which is what
// torch's enable_gqa (repeat_interleave of k and v along the head dim) computes.
// Causal masking is aligned at the bottom right: query i may see key j when j <= i + S - L, so a
// step that appends L new tokens to a cache of S - L sees the whole cache. (torch's is_causal is
// aligned at the top left; the two agree when L == S, and the lowering only emits causal then.)
// A row with every key masked produces zeros, as torch does. Rows are computed in [B, H, L]
// order; with out_seq_major each is stored at its row of out [B, L, H, Ev] (seq_major_row).
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// One (batch, kv head) slice of k or v widened to fp32 rows.
void load_rows(const TensorRef& t, int64_t batch, int64_t head, std::vector<float>* rows) {
  const int64_t rows_n = t.shape[2], width = t.shape[3];
  const int64_t base = ((batch * t.shape[1]) + head) * rows_n * width;
  rows->resize(static_cast<size_t>(rows_n * width));
  for (int64_t i = 0; i < rows_n * width; ++i) (*rows)[i] = static_cast<float>(load(t.data, t.dtype, base + i));
}

struct Problem {
  int64_t batch, heads, kv_heads, queries, keys, head_dim, value_dim;
  float scale;
  bool causal;
  const TensorRef* mask;             // nullptr when absent
  std::vector<int64_t> mask_strides;  // broadcast to [B, H, L, S]
};

// Additive bias of key j for one query row: 0 (visible), -inf (masked) or the float mask value.
float mask_bias(const Problem& pr, int64_t b, int64_t h, int64_t l, int64_t j) {
  if (pr.causal && j > l + pr.keys - pr.queries) return kNegInf;
  if (!pr.mask) return 0.f;
  const std::vector<int64_t>& s = pr.mask_strides;
  const int64_t offset = b * s[0] + h * s[1] + l * s[2] + j * s[3];
  if (pr.mask->dtype == DType::Bool) return static_cast<const uint8_t*>(pr.mask->data)[offset] ? 0.f : kNegInf;
  return static_cast<float>(load(pr.mask->data, pr.mask->dtype, offset));
}

// out_row = softmax(scale * q_row . K^T + bias) . V, for one query row.
void attend_row(const Problem& pr, int64_t b, int64_t h, int64_t l, const float* q_row,
                const std::vector<float>& keys, const std::vector<float>& values,
                std::vector<float>* scores, float* out_row) {
  float max_score = kNegInf;
  for (int64_t j = 0; j < pr.keys; ++j) {
    const float bias = mask_bias(pr, b, h, l, j);
    float score = kNegInf;
    if (bias != kNegInf) {
      const float* k_row = keys.data() + j * pr.head_dim;
      float dot = 0.f;
      for (int64_t e = 0; e < pr.head_dim; ++e) dot += q_row[e] * k_row[e];
      score = dot * pr.scale + bias;
    }
    (*scores)[j] = score;
    max_score = std::max(max_score, score);
  }
  std::fill(out_row, out_row + pr.value_dim, 0.f);
  if (max_score == kNegInf) return;  // every key masked
  float total = 0.f;
  for (int64_t j = 0; j < pr.keys; ++j) {
    const float weight = std::exp((*scores)[j] - max_score);
    if (weight == 0.f) continue;
    total += weight;
    const float* v_row = values.data() + j * pr.value_dim;  // data(): a zero-width head has no rows
    for (int64_t e = 0; e < pr.value_dim; ++e) out_row[e] += weight * v_row[e];
  }
  for (int64_t e = 0; e < pr.value_dim; ++e) out_row[e] /= total;
}

}  // namespace

Status sdpa(const Node& n, const SdpaParams& p) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &out = n.out;
  Problem pr{q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3],
             0.f, p.causal, p.has_mask ? &n.in[3] : nullptr, {}};
  pr.scale = p.scale != 0 ? static_cast<float>(p.scale) : 1.f / std::sqrt(static_cast<float>(pr.head_dim));
  if (pr.mask) pr.mask_strides = broadcast_strides(*pr.mask, sdpa_scores(n));
  const int64_t group = pr.heads / pr.kv_heads;
  std::vector<float> keys, values, scores(static_cast<size_t>(pr.keys)), q_row(static_cast<size_t>(pr.head_dim)),
      out_row(static_cast<size_t>(pr.value_dim));
  for (int64_t b = 0; b < pr.batch; ++b) {
    for (int64_t kv = 0; kv < pr.kv_heads; ++kv) {
      load_rows(k, b, kv, &keys);
      load_rows(v, b, kv, &values);
      for (int64_t h = kv * group; h < (kv + 1) * group; ++h) {
        for (int64_t l = 0; l < pr.queries; ++l) {
          const int64_t row = (b * pr.heads + h) * pr.queries + l;
          for (int64_t e = 0; e < pr.head_dim; ++e) q_row[e] = static_cast<float>(load(q.data, q.dtype, row * pr.head_dim + e));
          attend_row(pr, b, h, l, q_row.data(), keys, values, &scores, out_row.data());
          const int64_t out_row_at = p.out_seq_major ? seq_major_row(row, pr.heads, pr.queries) : row;
          const int64_t out_at = out_row_at * pr.value_dim;
          for (int64_t e = 0; e < pr.value_dim; ++e) store(out.data, out.dtype, out_at + e, out_row[e]);
        }
      }
    }
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
