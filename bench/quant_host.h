// Host side of the quantized-kernel test and benchmark: random packed weights in the ops.h
// layout, float <-> f16/bf16 rounding, and an fp64 reference of quant_linear / quant_embedding
// written straight from the contract (TorchAO's formulas), independent of the kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/ops.h"

namespace qhost {

using etgpu::DType;

inline float round_to(float v, DType d) {
  if (d == DType::BF16) return __bfloat162float(__float2bfloat16(v));
  if (d == DType::F16) return __half2float(__float2half(v));
  return v;
}

// Stores floats as `d` (2 or 4 bytes per element).
inline std::vector<uint8_t> encode(const std::vector<float>& v, DType d) {
  const size_t es = d == DType::F32 ? 4 : 2;
  std::vector<uint8_t> out(v.size() * es);
  for (size_t i = 0; i < v.size(); ++i) {
    if (d == DType::F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
    } else if (d == DType::F16) {
      const __half h = __float2half(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      const __nv_bfloat16 b = __float2bfloat16(v[i]);
      std::memcpy(&out[i * 2], &b, 2);
    }
  }
  return out;
}

inline std::vector<float> decode(const std::vector<uint8_t>& bytes, DType d) {
  const size_t es = d == DType::F32 ? 4 : 2, n = bytes.size() / es;
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (d == DType::F32) {
      std::memcpy(&out[i], &bytes[i * 4], 4);
    } else if (d == DType::F16) {
      __half h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = __half2float(h);
    } else {
      __nv_bfloat16 b;
      std::memcpy(&b, &bytes[i * 2], 2);
      out[i] = __bfloat162float(b);
    }
  }
  return out;
}

inline double e4m3(uint8_t s) {
  const int exp = (s >> 3) & 15, mant = s & 7;
  const double mag = exp == 0 ? mant * std::ldexp(1.0, -9) : std::ldexp(1.0 + mant / 8.0, exp - 7);
  return (s & 0x80) ? -mag : mag;
}

inline double e2m1(unsigned u) {
  static const double kMag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (u & 8) ? -kMag[u & 7] : kMag[u & 7];
}

// A random packed weight [n, k] and its exact fp64 dequantization.
struct Weight {
  etgpu::QuantWeightParams p;
  int64_t n = 0, k = 0;
  DType param_dtype = DType::F32;
  std::vector<uint8_t> codes, scales, zeros;  // device bytes
  std::vector<double> w;                      // [n, k] dequantized

  int64_t groups() const { return k / p.group; }
};

inline Weight make_weight(const etgpu::QuantWeightParams& p, int64_t n, int64_t k, DType param_dtype,
                          std::mt19937& rng) {
  Weight q;
  q.p = p;
  q.n = n;
  q.k = k;
  const bool fp4 = p.scheme == etgpu::QuantScheme::NvFp4;
  q.param_dtype = fp4 ? DType::U8 : param_dtype;
  const int bits = fp4 ? 4 : p.bits;
  const int64_t groups = k / p.group;
  std::vector<uint32_t> u(n * k);
  for (auto& v : u) v = rng() & ((1u << bits) - 1);
  q.codes.assign(n * k * bits / 8, 0);
  for (int64_t i = 0; i < n * k; ++i) {
    const int64_t bit = (i % k) * bits + (i / k) * k * bits;
    q.codes[bit / 8] |= static_cast<uint8_t>(u[i] << (bit % 8));
  }
  std::vector<double> scale(n * groups), zero(n * groups, 0.0);
  if (fp4) {
    q.scales.resize(n * groups);
    // exponents 4..10 (scales 0.125 .. ~16), random mantissa and sign
    for (int64_t i = 0; i < n * groups; ++i) {
      q.scales[i] = static_cast<uint8_t>(((4 + rng() % 7) << 3) | (rng() & 7) | (rng() & 0x80));
      scale[i] = e4m3(q.scales[i]) * p.tensor_scale;
    }
  } else {
    std::uniform_real_distribution<float> s(0.002f, 0.05f), zf(-0.1f, 0.1f);
    std::vector<float> sv(n * groups), zv(n * groups);
    for (int64_t i = 0; i < n * groups; ++i) {
      sv[i] = round_to((rng() & 1 ? 1.f : -1.f) * s(rng), param_dtype);
      zv[i] = p.zero_is_float ? round_to(zf(rng), param_dtype) : static_cast<float>(rng() % (1u << bits));
      scale[i] = sv[i];
      zero[i] = zv[i];
    }
    q.scales = encode(sv, param_dtype);
    if (p.has_zeros) q.zeros = encode(zv, param_dtype);
  }
  const double mid = std::ldexp(1.0, bits - 1);
  q.w.resize(n * k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = r * groups + c / p.group;
      const double v = u[r * k + c];
      if (fp4) q.w[r * k + c] = e2m1(u[r * k + c]) * scale[g];
      else if (!p.has_zeros) q.w[r * k + c] = (v - mid) * scale[g];
      else if (p.zero_is_float) q.w[r * k + c] = (v - mid) * scale[g] + zero[g];
      else q.w[r * k + c] = (v - zero[g]) * scale[g];
    }
  }
  return q;
}

// TorchAO's per-token asymmetric int8 quantize-dequantize of one row, in dtype `d`.
inline void act_quant_row(float* x, int64_t k, DType d) {
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < k; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const float eps = d == DType::F16 ? 6.103515625e-05f : 1.17549435e-38f;
  const float scale = std::max(round_to(round_to(hi - lo, d) / 255.f, d), eps);
  const float zp = std::min(std::max(-128.f - std::nearbyint(round_to(lo / scale, d)), -128.f), 127.f);
  const float inv = round_to(1.f / scale, d);
  for (int64_t i = 0; i < k; ++i) {
    const float q = std::min(std::max(std::nearbyint(round_to(x[i] * inv, d)) + zp, -128.f), 127.f);
    x[i] = round_to((q - zp) * scale, d);
  }
}

// out[m, n] = x'[m, :] . w[n, :] (+ bias) in fp64; x already rounded to its dtype.
inline std::vector<double> linear_ref(const Weight& q, std::vector<float> x, int64_t m, const float* bias,
                                      bool act, DType d) {
  if (act) {
    for (int64_t r = 0; r < m; ++r) act_quant_row(&x[r * q.k], q.k, d);
  }
  std::vector<double> out(m * q.n);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < q.n; ++c) {
      double s = bias ? bias[c] : 0.0;
      for (int64_t i = 0; i < q.k; ++i) s += static_cast<double>(x[r * q.k + i]) * q.w[c * q.k + i];
      out[r * q.n + c] = s;
    }
  }
  return out;
}

// ||a - b|| / ||b||; infinity when a holds a non-finite value.
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1.0));
}

}  // namespace qhost
