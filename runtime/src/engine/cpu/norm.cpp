// Softmax / LogSoftmax, LayerNorm and RmsNorm. Statistics accumulate in double; each output
// element is rounded once to the output dtype, which is what torch's CPU kernels do for fp16/bf16
// (they upcast to fp32 internally). Weights and biases may have another float dtype than x.
#include <cmath>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

int64_t product(const TensorRef& t, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; ++d) n *= t.shape[d];
  return n;
}

}  // namespace

// x viewed as [outer, len, inner] around `dim`; each (outer, inner) pair is one softmax row,
// shifted by its maximum so exp never overflows.
Status softmax(const Node& n, const SoftmaxParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int dim = x.rank == 0 ? 0 : (p.dim < 0 ? p.dim + x.rank : p.dim);
  const int64_t len = x.rank == 0 ? 1 : x.shape[dim];
  const int64_t inner = x.rank == 0 ? 1 : product(x, dim + 1, x.rank);
  const int64_t outer = x.rank == 0 ? 1 : product(x, 0, dim);
  std::vector<double> row(static_cast<size_t>(len));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      double max = -INFINITY;
      for (int64_t k = 0; k < len; ++k) {
        row[k] = load(x.data, x.dtype, base + k * inner);
        // NaN must reach every output of its row, as in torch: keep it as the "maximum".
        if (row[k] > max || std::isnan(row[k])) max = std::isnan(max) ? max : row[k];
      }
      double sum = 0;
      for (int64_t k = 0; k < len; ++k) sum += std::exp(row[k] - max);
      const double log_sum = std::log(sum);
      for (int64_t k = 0; k < len; ++k) {
        const double shifted = row[k] - max;
        store(out.data, out.dtype, base + k * inner, p.log ? shifted - log_sum : std::exp(shifted) / sum);
      }
    }
  }
  return Status::ok();
}

// Normalizes each row of the last `normalized_ndim` dims with its biased variance (two passes,
// so a large mean does not cancel the variance away).
Status layer_norm(const Node& n, const LayerNormParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const TensorRef* weight = p.has_weight ? &n.in[1] : nullptr;
  const TensorRef* bias = p.has_bias ? &n.in[p.has_weight ? 2 : 1] : nullptr;
  const int64_t inner = product(x, x.rank - p.normalized_ndim, x.rank);
  const int64_t rows = inner == 0 ? 0 : x.numel() / inner;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t base = r * inner;
    double mean = 0;
    for (int64_t k = 0; k < inner; ++k) mean += load(x.data, x.dtype, base + k);
    mean /= static_cast<double>(inner);
    double var = 0;
    for (int64_t k = 0; k < inner; ++k) {
      const double centered = load(x.data, x.dtype, base + k) - mean;
      var += centered * centered;
    }
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(inner) + p.eps);
    for (int64_t k = 0; k < inner; ++k) {
      double v = (load(x.data, x.dtype, base + k) - mean) * rstd;
      if (weight) v *= load(weight->data, weight->dtype, k);
      if (bias) v += load(bias->data, bias->dtype, k);
      store(out.data, out.dtype, base + k, v);
    }
  }
  return Status::ok();
}

float rms_rstd(const TensorRef& x, int64_t base, int64_t inner, double eps) {
  double sum_sq = 0;
  for (int64_t k = 0; k < inner; ++k) {
    const double v = load(x.data, x.dtype, base + k);
    sum_sq += v * v;
  }
  return static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(inner) + eps));
}

// Element math is fp32, as in torch and transformers. Rounding follows the model being mirrored:
// torch's rms_norm and Gemma round once at the end; transformers' Llama/Qwen RMSNorm first
// rounds the normalized x to x's dtype, then multiplies by the weight (round_normalized).
float rms_normalize(float v, float rstd, const TensorRef* weight, int64_t k, DType x_dtype, const RmsNormParams& p) {
  v *= rstd;
  if (p.round_normalized) v = round_to(x_dtype, v);
  if (weight) {
    const float w = static_cast<float>(load(weight->data, weight->dtype, k));
    v *= p.unit_offset ? 1.0f + w : w;
  }
  return v;
}

namespace {

// One row: `base` is its first element in x and out.
void rms_norm_row(const TensorRef& x, const TensorRef* weight, const TensorRef& out, const RmsNormParams& p,
                  int64_t base, int64_t inner) {
  const float rstd = rms_rstd(x, base, inner, p.eps);
  for (int64_t k = 0; k < inner; ++k) {
    const float v = static_cast<float>(load(x.data, x.dtype, base + k));
    store(out.data, out.dtype, base + k, rms_normalize(v, rstd, weight, k, x.dtype, p));
  }
}

int64_t last_dim(const TensorRef& x) { return x.rank == 0 ? 1 : x.shape[x.rank - 1]; }

}  // namespace

Status rms_norm(const Node& n, const RmsNormParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const TensorRef* weight = p.has_weight ? &n.in[1] : nullptr;
  const int64_t inner = last_dim(x);
  const int64_t rows = inner == 0 ? 0 : x.numel() / inner;
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(x, weight, out, p, r * inner, inner);
  return Status::ok();
}

// Each row's sum is stored first (rounded by `store`, exactly as Binary's add stores it), then
// normalized from the stored values: bit for bit the unfused Binary + RmsNorm pair.
Status add_rms_norm(const Node& n, const AddRmsNormParams& p) {
  const TensorRef &x = n.in[0], &residual = n.in[1], &sum = n.extra_out[0], &out = n.out;
  const TensorRef* weight = p.norm.has_weight ? &n.in[2] : nullptr;
  const int64_t inner = last_dim(x);
  const int64_t rows = inner == 0 ? 0 : x.numel() / inner;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t base = r * inner;
    for (int64_t k = base; k < base + inner; ++k) {
      store(sum.data, sum.dtype, k, load(x.data, x.dtype, k) + load(residual.data, residual.dtype, k));
    }
    rms_norm_row(sum, weight, out, p.norm, base, inner);
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
