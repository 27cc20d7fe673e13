#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000 | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int shift = 0;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        ++shift;
      }
      mantissa &= 0x3FF;
      bits = sign | ((127 - 15 - shift + 1) << 23) | (mantissa << 13);
    }
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7FFFFFFF;
  if (abs >= 0x7F800000) return sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0);  // inf / nan
  if (abs >= 0x477FF000) return sign | 0x7C00;  // rounds to overflow
  if (abs < 0x38800000) {  // subnormal half (or zero): round to nearest even at 2^-24
    float magnitude;
    std::memcpy(&magnitude, &abs, 4);
    const float scaled = magnitude * 16777216.0f;  // exact: multiply by 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t rounded = abs + 0xFFF + ((abs >> 13) & 1);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

std::vector<int64_t> broadcast_strides(const TensorRef& x, const TensorRef& out) {
  std::vector<int64_t> strides(out.rank, 0);
  int64_t s = 1;
  for (int i = 1; i <= x.rank; ++i) {
    const int64_t size = x.shape[x.rank - i];
    strides[out.rank - i] = size == 1 ? 0 : s;
    s *= size;
  }
  return strides;
}

StridedWalk::StridedWalk(const TensorRef& out, std::vector<std::vector<int64_t>> operand_strides,
                         std::vector<int64_t> base_offsets)
    : rank_(out.rank), shape_(out.shape, out.shape + out.rank), strides_(std::move(operand_strides)),
      index_(out.rank, 0), offsets_(std::move(base_offsets)) {
  offsets_.resize(strides_.size(), 0);
}

void StridedWalk::next() {
  for (int d = rank_ - 1; d >= 0; --d) {
    ++index_[d];
    for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] += strides_[k][d];
    if (index_[d] < shape_[d]) return;
    for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] -= strides_[k][d] * shape_[d];
    index_[d] = 0;
  }
}

void strided_copy(const TensorRef& x, const std::vector<int64_t>& strides, int64_t offset,
                  const TensorRef& out) {
  const size_t element = dtype_size(x.dtype);
  const int64_t n = out.numel();
  StridedWalk walk(out, {strides}, {offset});
  const auto* src = static_cast<const uint8_t*>(x.data);
  auto* dst = static_cast<uint8_t*>(out.data);
  for (int64_t i = 0; i < n; ++i, walk.next()) {
    std::memcpy(dst + i * element, src + walk.offset(0) * element, element);
  }
}

}  // namespace etgpu::cpu
