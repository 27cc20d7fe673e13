// Quantized linear and embedding on the CPU engine (layout: ops.h, docs/quantization.md). Both
// ops go through one row dequantizer, so the reference for the CUDA kernels is one function.
// Rounding follows TorchAO's eager reference: the dequantized weight is computed in the scales'
// dtype (dequantize_affine's output dtype), and the 8da activation path rounds to x's dtype
// after every step, as the eager ops on half-precision tensors do.
#include <algorithm>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

// Rounds a float to `dtype`'s precision (identity for F32), as a half-precision torch op does.
float round_to(DType dtype, float v) {
  switch (dtype) {
    case DType::BF16: return bf16_to_float(float_to_bf16(v));
    case DType::F16: return half_to_float(float_to_half(v));
    default: return v;
  }
}

// FP4 e2m1: sign, 2 exponent bits (bias 1), 1 mantissa bit; exponent 0 is subnormal (0 or 0.5).
float e2m1(uint8_t nibble) {
  static const float kMagnitude[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const float v = kMagnitude[nibble & 7];
  return (nibble & 8) ? -v : v;
}

// FP8 e4m3 (the "fn" variant: no infinities, S.1111.111 is NaN), exponent bias 7.
float e4m3(uint8_t byte) {
  const int exponent = (byte >> 3) & 15, mantissa = byte & 7;
  float v;
  if ((byte & 0x7F) == 0x7F) v = NAN;
  else if (exponent == 0) v = std::ldexp(static_cast<float>(mantissa), -9);  // (m/8) * 2^-6
  else v = std::ldexp(1.f + mantissa / 8.f, exponent - 7);
  return (byte & 0x80) ? -v : v;
}

// The packed operands of one weight, as the validator checked them.
struct PackedWeight {
  const QuantWeightParams& p;
  const TensorRef& codes;
  const TensorRef& scales;
  const TensorRef* zeros;
  int64_t cols;   // K
  DType rounding;  // the dtype the reference dequantizes into (see packed())
};

// Unsigned code of element k in a row of packed bytes (low bits first).
uint32_t code_at(const uint8_t* row, int64_t k, int bits) {
  const int64_t bit = k * bits;
  return (row[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

// Row `r` of the dequantized [N, K] weight, in fp32.
void dequant_row(const PackedWeight& w, int64_t r, float* dst) {
  const QuantWeightParams& p = w.p;
  const auto* row = static_cast<const uint8_t*>(w.codes.data) + r * w.codes.shape[1];
  const int64_t groups = w.cols / p.group;
  if (p.scheme == QuantScheme::NvFp4) {
    const auto* scales = static_cast<const uint8_t*>(w.scales.data) + r * groups;
    for (int64_t k = 0; k < w.cols; ++k) {
      const float scale = p.tensor_scale * e4m3(scales[k / p.group]);
      dst[k] = round_to(w.rounding, e2m1(static_cast<uint8_t>(code_at(row, k, 4))) * scale);
    }
    return;
  }
  const DType dtype = w.rounding;
  const float mid = static_cast<float>(1 << (p.bits - 1));
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = static_cast<float>(load(w.scales.data, w.scales.dtype, r * groups + g));
    const float zero = w.zeros ? static_cast<float>(load(w.zeros->data, w.scales.dtype, r * groups + g)) : mid;
    for (int64_t k = g * p.group; k < (g + 1) * p.group; ++k) {
      const float u = static_cast<float>(code_at(row, k, p.bits));
      dst[k] = p.zero_is_float ? round_to(dtype, round_to(dtype, (u - mid) * scale) + zero)
                               : round_to(dtype, (u - zero) * scale);
    }
  }
}

// TorchAO 8da: choose_qparams_affine (asymmetric, int8, per row), quantize_affine and
// dequantize_affine, each step rounded to x's dtype as the eager ops are.
void fake_quant_int8_row(float* x, int64_t k, DType dtype) {
  const auto r = [dtype](float v) { return round_to(dtype, v); };
  const float min_neg = std::min(*std::min_element(x, x + k), 0.f);
  const float max_pos = std::max(*std::max_element(x, x + k), 0.f);
  const float eps = dtype == DType::F16 ? 6.103515625e-05f : 1.17549435e-38f;  // smallest normal
  const float scale = std::max(r(r(max_pos - min_neg) / 255.f), eps);
  const float zero = std::clamp(r(-128.f - std::nearbyint(r(min_neg / scale))), -128.f, 127.f);
  const float inv = r(1.f / scale);
  for (int64_t i = 0; i < k; ++i) {
    const float q = std::clamp(r(std::nearbyint(r(x[i] * inv)) + zero), -128.f, 127.f);
    x[i] = r(r(q - zero) * scale);
  }
}

// Affine weights dequantize in the scales' dtype (dequantize_affine's output dtype); NVFP4 in
// fp32, rounded once to the output dtype (NVFP4Tensor.dequantize).
PackedWeight packed(const Node& n, const QuantWeightParams& p, int64_t cols) {
  const DType rounding = p.scheme == QuantScheme::NvFp4 ? n.out.dtype : n.in[2].dtype;
  return PackedWeight{p, n.in[1], n.in[2], p.has_zeros ? &n.in[3] : nullptr, cols, rounding};
}

}  // namespace

Status quant_linear(const Node& n, const QuantLinearParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t k = x.size(-1), cols = out.size(-1), rows = x.numel() / std::max<int64_t>(k, 1);
  const PackedWeight w = packed(n, p.w, k);
  const TensorRef* bias = quant_linear_bias(n, p);
  std::vector<float> xs(static_cast<size_t>(rows * k)), wrow(static_cast<size_t>(k));
  for (int64_t i = 0; i < rows * k; ++i) xs[i] = static_cast<float>(load(x.data, x.dtype, i));
  if (p.act == ActQuant::Int8PerTokenAsym) {
    for (int64_t m = 0; m < rows && k > 0; ++m) fake_quant_int8_row(&xs[m * k], k, x.dtype);
  }
  for (int64_t j = 0; j < cols; ++j) {
    dequant_row(w, j, wrow.data());  // once per output feature, shared by every row of x
    const double b = bias ? load(bias->data, bias->dtype, j) : 0.0;
    for (int64_t m = 0; m < rows; ++m) {
      const float* xr = xs.data() + m * k;
      float acc = 0.f;
      for (int64_t c = 0; c < k; ++c) acc += xr[c] * wrow[c];
      store(out.data, out.dtype, m * cols + j, acc + b);
    }
  }
  return Status::ok();
}

Status quant_embedding(const Node& n, const QuantEmbeddingParams& p) {
  const TensorRef &index = n.in[0], &out = n.out;
  const int64_t dim = out.size(-1), vocab = n.in[1].shape[0], count = index.numel();
  // Check every index first so a bad one leaves the output untouched.
  for (int64_t i = 0; i < count; ++i) {
    const int64_t raw = load_int(index.data, index.dtype, i);
    if (raw < -vocab || raw >= vocab) {
      return err("quant_embedding: index ", raw, " at position ", i, " is out of range for ", vocab, " rows");
    }
  }
  const PackedWeight w = packed(n, p.w, dim);
  std::vector<float> row(static_cast<size_t>(dim));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t raw = load_int(index.data, index.dtype, i);
    dequant_row(w, raw < 0 ? raw + vocab : raw, row.data());
    for (int64_t c = 0; c < dim; ++c) store(out.data, out.dtype, i * dim + c, row[c]);
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
