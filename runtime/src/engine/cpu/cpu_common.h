// Shared pieces of the CPU reference engine: scalar conversions for every dtype, and an
// iterator over an output's elements that yields the matching offsets of broadcast operands.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/ops.h"
#include "etgpu/status.h"

namespace etgpu::cpu {

inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

// Float to int64 with truncation toward zero, defined for every input: a plain cast of NaN or of
// a value outside int64's range is undefined behaviour (and a hostile payload or a NaN input
// reaches it). NaN gives 0; out-of-range values saturate. Narrower integer stores wrap from this.
inline int64_t to_int64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(v);
}

// Two's-complement wrapping arithmetic (what torch's integer kernels produce), without the
// undefined behaviour of signed overflow in C++.
inline int64_t wrap_add(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }
inline int64_t wrap_sub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
inline int64_t wrap_mul(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); }

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

// Rounds v to `dtype`'s precision (and back), where a model rounds mid-way (and fused ops mirror it).
inline float round_to(DType dtype, float v) {
  switch (dtype) {
    case DType::F16: return half_to_float(float_to_half(v));
    case DType::BF16: return bf16_to_float(float_to_bf16(v));
    default: return v;
  }
}

// Reads element `i` of a `dtype` buffer as double (floats) — exact for every dtype but
// int64 values beyond 2^53, which use load_int.
inline double load(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I16: return static_cast<const int16_t*>(p)[i];
    case DType::I8: return static_cast<const int8_t*>(p)[i];
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
    case DType::Bool: return static_cast<const uint8_t*>(p)[i] != 0;
  }
  return 0;
}

inline int64_t load_int(const void* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::I64: return static_cast<const int64_t*>(p)[i];
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I16: return static_cast<const int16_t*>(p)[i];
    case DType::I8: return static_cast<const int8_t*>(p)[i];
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
    case DType::Bool: return static_cast<const uint8_t*>(p)[i] != 0;
    default: return to_int64(load(p, dtype, i));
  }
}

// index_copy's bound (the KV-cache write): every position in `index` lies in [0, extent), checked
// before anything is written, so a step past the cache leaves it untouched.
inline Status check_positions(const TensorRef& index, int64_t extent) {
  for (int64_t i = 0; i < index.shape[0]; ++i) {
    const int64_t target = load_int(index.data, index.dtype, i);
    ETGPU_CHECK(target >= 0 && target < extent, "index_copy: position ", target, " is outside [0, ", extent,
                ") (past the end of the cache?)");
  }
  return Status::ok();
}

// Where row (b, h, l) of a [B, H, L, D] value is stored when it is seq-major, as [B, L, H, D] (a
// projection's heads before attention's transpose(1, 2)): row (b * H + h) * L + l of the [B, H, L]
// order is at (b * L + l) * H + h. Rope's and IndexCopy's x_seq_major and Sdpa's out_seq_major.
inline int64_t seq_major_row(int64_t row, int64_t heads, int64_t seq) {
  const int64_t l = row % seq, h = (row / seq) % heads, b = row / (seq * heads);
  return (b * seq + l) * heads + h;
}

// Float to integer as torch casts: truncation toward zero.
inline void store(void* p, DType dtype, int64_t i, double v) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DType::F16: static_cast<uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); return;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); return;
    case DType::I64: static_cast<int64_t*>(p)[i] = to_int64(v); return;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(to_int64(v)); return;
    case DType::I16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(to_int64(v)); return;
    case DType::I8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(to_int64(v)); return;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(to_int64(v)); return;
    case DType::Bool: static_cast<uint8_t*>(p)[i] = v != 0; return;
  }
}

inline void store_int(void* p, DType dtype, int64_t i, int64_t v) {
  switch (dtype) {
    case DType::I64: static_cast<int64_t*>(p)[i] = v; return;
    case DType::I32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); return;
    case DType::I16: static_cast<int16_t*>(p)[i] = static_cast<int16_t>(v); return;
    case DType::I8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(v); return;
    case DType::U8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); return;
    case DType::Bool: static_cast<uint8_t*>(p)[i] = v != 0; return;
    default: store(p, dtype, i, static_cast<double>(v));
  }
}

// Element strides of `x` when broadcast (right-aligned) to `out`'s rank: 0 where x has size 1.
std::vector<int64_t> broadcast_strides(const TensorRef& x, const TensorRef& out);

// Walks `out` in row-major order, keeping one offset per operand (given its strides).
class StridedWalk {
 public:
  StridedWalk(const TensorRef& out, std::vector<std::vector<int64_t>> operand_strides,
              std::vector<int64_t> base_offsets = {});
  int64_t offset(size_t operand) const { return offsets_[operand]; }
  void next();

 private:
  int rank_;
  std::vector<int64_t> shape_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

// Copies the strided view (shape of `out`, `strides`, `offset` in elements) of `x` into `out`.
void strided_copy(const TensorRef& x, const std::vector<int64_t>& strides, int64_t offset,
                  const TensorRef& out);

// RMSNorm's two steps, shared by RmsNorm, AddRmsNorm and a Rope's norm so that they round alike:
// rms_rstd is 1 / sqrt(mean(x^2) + eps) over the `inner` elements of x from `base` (accumulated in
// double); rms_normalize is element k of such a row, v * rstd, times weight (1 + weight with
// unit_offset) when there is one, in fp32 and not yet rounded to the output dtype.
float rms_rstd(const TensorRef& x, int64_t base, int64_t inner, double eps);
float rms_normalize(float v, float rstd, const TensorRef* weight, int64_t k, DType x_dtype, const RmsNormParams& p);

// Kernels, one entry per op family (each file in this folder implements its family).
Status unary(const Node& n, const UnaryParams& p);
Status binary(const Node& n, const BinaryParams& p);
Status where(const Node& n, const WhereParams& p);
Status cast(const Node& n, const CastParams& p);
Status fill(const Node& n, const FillParams& p);
Status arange(const Node& n, const ArangeParams& p);
Status matmul(const Node& n, const MatMulParams& p);
Status split_linear(const Node& n, const SplitLinearParams& p);
Status reduce(const Node& n, const ReduceParams& p);
Status softmax(const Node& n, const SoftmaxParams& p);
Status layer_norm(const Node& n, const LayerNormParams& p);
Status rms_norm(const Node& n, const RmsNormParams& p);
Status add_rms_norm(const Node& n, const AddRmsNormParams& p);
Status permute(const Node& n, const PermuteParams& p);
Status expand(const Node& n, const ExpandParams& p);
Status slice(const Node& n, const SliceParams& p);
Status select(const Node& n, const SelectParams& p);
Status cat(const Node& n, const CatParams& p);
Status index_select(const Node& n, const IndexSelectParams& p);
Status gather(const Node& n, const GatherParams& p);
Status sdpa(const Node& n, const SdpaParams& p);
Status copy_into(const Node& n, const CopyIntoParams& p);
Status index_copy(const Node& n, const IndexCopyParams& p);
Status quant_linear(const Node& n, const QuantLinearParams& p);
Status quant_embedding(const Node& n, const QuantEmbeddingParams& p);
Status rope(const Node& n, const RopeParams& p);
Status glu(const Node& n, const GluParams& p);

}  // namespace etgpu::cpu
