// Packed-weight decoding shared by the quantized GEMV, the dequantize-to-scratch GEMM path and
// the quantized embedding (layout: ops.h). The unit of work is one 32-bit word of codes: P
// elements (16 at 2 bits, 8 at 4, 4 at 8) that all lie in one quantization group (groups are
// multiples of 16 or a whole row). A word decodes into P/2 pairs, pair j = (element j, element
// j + P/2): that order lets one shift + lop3 turn two codes into a packed bf16x2/half2 with no
// shuffling (the second code sits exactly 16 bits above the first). Consumers that need natural
// order (scratch, embedding) write pair j to positions j and j + P/2; the GEMV instead permutes
// x the same way, which a dot product does not notice.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "engine/cuda/device.cuh"
#include "engine/ops.h"

namespace etgpu::cuda {

// Compile-time code format: the affine bit widths, and NvFp4 (e2m1 codes, e4m3 group scales).
enum QuantFormat : int { kInt2 = 2, kInt4 = 4, kInt8 = 8, kFp4 = 5 };

__host__ __device__ constexpr int format_bits(int fmt) { return fmt == kFp4 ? 4 : fmt; }
__host__ __device__ constexpr int codes_per_word(int fmt) { return 32 / format_bits(fmt); }

// A packed weight [rows, cols] as kernels see it.
struct PackedWeight {
  const uint32_t* codes;        // row-major words; a row is row_words words
  const void* scales;           // [rows, groups]; U8 e4m3 for NvFp4
  const void* zeros;            // [rows, groups] or null
  DType param_dtype;
  int64_t rows, cols, row_words, groups;
  int group_shift;              // log2(group), or 31 when a group is a whole row
  bool zero_is_float;
  float tensor_scale;           // NvFp4 only
};

// ---- per-group parameters: w = (u - sub) * scale + add -------------------------------------------

struct GroupParams {
  float sub, scale, add;
};

// e4m3's exponent and mantissa placed in fp32's top bits read as value * 2^-120 (subnormals
// land on fp32 subnormals), so one multiply restores it: no ldexpf. Needs denormals (no ftz).
__host__ __device__ inline float e4m3_to_float(uint8_t s) {
  const uint32_t bits = (uint32_t(s & 0x80) << 24) | (uint32_t(s & 0x7f) << 20);
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits) * 0x1p120f;
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f * 0x1p120f;
#endif
}

// A group's scale and zero as stored (the bits of one f32, f16, bf16 or e4m3 value each; zero 0
// when there are no zeros): the GEMV loads these steps ahead with its codes and converts them
// only when it decodes.
struct RawGroup {
  uint32_t scale, zero;
};

// Scales and zeros are f32, f16 or bf16 (e4m3 bytes for NvFp4). P is their type where the launch
// fixed it (the GEMV: no branches in its hot loop), void where w.param_dtype picks it at run time
// (a uniform branch).
template <int kFmt, class P>
__device__ __forceinline__ uint32_t load_raw_param(const void* p, DType dtype, int64_t i) {
  if constexpr (kFmt == kFp4) {
    return __ldg(static_cast<const uint8_t*>(p) + i);
  } else if constexpr (std::is_void_v<P>) {
    return dtype == DType::F32 ? load_raw_param<kFmt, float>(p, dtype, i) : load_raw_param<kFmt, __half>(p, dtype, i);
  } else if constexpr (sizeof(P) == 4) {
    return __ldg(static_cast<const uint32_t*>(p) + i);
  } else {
    return __ldg(static_cast<const uint16_t*>(p) + i);
  }
}

template <int kFmt, class P>
__device__ __forceinline__ RawGroup load_raw_group(const PackedWeight& w, int64_t i) {
  const uint32_t scale = load_raw_param<kFmt, P>(w.scales, w.param_dtype, i);
  return {scale, kFmt != kFp4 && w.zeros ? load_raw_param<kFmt, P>(w.zeros, w.param_dtype, i) : 0u};
}

template <class P>
__device__ __forceinline__ float param_to_float(uint32_t raw, DType dtype) {
  if constexpr (std::is_void_v<P>) {
    if (dtype == DType::BF16) return param_to_float<__nv_bfloat16>(raw, dtype);
    if (dtype == DType::F16) return param_to_float<__half>(raw, dtype);
    return param_to_float<float>(raw, dtype);
  } else if constexpr (std::is_same_v<P, __nv_bfloat16>) {
    return __uint_as_float(raw << 16);
  } else if constexpr (std::is_same_v<P, __half>) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(raw)));
  } else {
    return __uint_as_float(raw);
  }
}

template <int kFmt, class P>
__device__ __forceinline__ GroupParams unpack_group(const PackedWeight& w, RawGroup r) {
  if constexpr (kFmt == kFp4) {
    return {0.f, e4m3_to_float(static_cast<uint8_t>(r.scale)) * w.tensor_scale, 0.f};
  } else {
    // Selects, not branches: zero is 0 without zeros, so each domain is one uniform select.
    constexpr float kMid = 1 << (format_bits(kFmt) - 1);
    const float zero = param_to_float<P>(r.zero, w.param_dtype);
    const bool integer_zero = w.zeros && !w.zero_is_float;
    return {integer_zero ? zero : kMid, param_to_float<P>(r.scale, w.param_dtype), w.zero_is_float ? zero : 0.f};
  }
}

template <int kFmt>
__device__ __forceinline__ GroupParams load_group(const PackedWeight& w, int64_t row, int64_t group) {
  return unpack_group<kFmt, void>(w, load_raw_group<kFmt, void>(w, row * w.groups + group));
}

// ---- word decoding ---------------------------------------------------------------------------------

template <class T> struct Pair;
template <> struct Pair<__nv_bfloat16> { using type = __nv_bfloat162; };
template <> struct Pair<__half> { using type = __half2; };
template <> struct Pair<float> { using type = float2; };

// Element e of a word as fp32 (exact for the affine codes).
template <int kFmt>
__device__ __forceinline__ float decode_element(uint32_t word, int e, const GroupParams& g) {
  constexpr int kBits = format_bits(kFmt);
  const uint32_t u = (word >> (kBits * e)) & ((1u << kBits) - 1);
  if constexpr (kFmt == kFp4) {
    // e2m1 placed in fp32's sign/exponent/mantissa top bits reads as value * 2^-126 (the
    // subnormal e=0 case included), so one multiply restores it. Needs denormals (no ftz).
    const float v = __uint_as_float(((u & 8u) << 28) | ((u & 7u) << 22)) * 0x1p126f;
    return v * g.scale;
  } else {
    // 2^23 + u read as a float, minus (2^23 + sub): the integer u - sub, exactly.
    const float d = __uint_as_float(0x4B000000u | u) - (8388608.f + g.sub);
    return fmaf(d, g.scale, g.add);
  }
}

template <class T>
__device__ __forceinline__ typename Pair<T>::type pack_pair(float lo, float hi) {
  if constexpr (sizeof(T) == 4) return make_float2(lo, hi);
  else if constexpr (std::is_same_v<T, __half>) return __floats2half2_rn(lo, hi);
  else return __floats2bfloat162_rn(lo, hi);
}

// Packed 16-bit route: codes land in the mantissa of a magic constant (bf16 128 + u, half
// 1024 + u, exact), one subtract gives u - sub exactly, one fma applies the group: two
// instructions per pair. bf16 has too few mantissa bits for 8-bit codes and fp4 is not
// affine, so those go through fp32 (the GEMV's int8 x bf16 through Int8Bf16Decoder, below).
template <int kFmt, class T>
constexpr bool kPackedRoute = sizeof(T) == 2 && kFmt != kFp4 && (kFmt != kInt8 || std::is_same_v<T, __half>);

// Decodes the words of one group into pairs of T; built once per group so the packed
// constants are converted once, not per pair.
template <int kFmt, class T>
struct WordDecoder {
  using T2 = typename Pair<T>::type;
  static constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  static constexpr uint32_t kMagic = kBf16 ? 0x43004300u : 0x64006400u;
  static constexpr float kBase = kBf16 ? 128.f : 1024.f;

  GroupParams g;
  T2 sub2, scale2, add2;

  __device__ __forceinline__ explicit WordDecoder(const GroupParams& params) : g(params) {
    if constexpr (kPackedRoute<kFmt, T>) {
      sub2 = pack_pair<T>(kBase + g.sub, kBase + g.sub);
      scale2 = pack_pair<T>(g.scale, g.scale);
      add2 = pack_pair<T>(g.add, g.add);
    }
  }
  // The packed route's constants, built by the caller (make_decoder).
  __device__ __forceinline__ WordDecoder(T2 sub, T2 scale, T2 add) : g{}, sub2(sub), scale2(scale), add2(add) {}

  // Pair j of the word: (code j, code j + P/2).
  __device__ __forceinline__ T2 pair(uint32_t word, int j) const {
    if constexpr (kPackedRoute<kFmt, T>) {
      uint32_t bits;
      if constexpr (kFmt == kInt8) {
        // bytes j and j + 2 into the low bytes of the two halves, 0x64 above each.
        bits = __byte_perm(word, kMagic, j | 0x7070 | ((j + 2) << 8));
      } else {
        // (code & mask) | magic as one lop3: the compiler emits an and plus an or otherwise.
        constexpr uint32_t kMask = ((1u << format_bits(kFmt)) - 1) * 0x00010001u;
        asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(bits) : "r"(word >> (format_bits(kFmt) * j)), "n"(kMask),
            "n"(kMagic));
      }
      const T2 v = __hsub2(*reinterpret_cast<const T2*>(&bits), sub2);
      return __hfma2(v, scale2, add2);
    } else {
      constexpr int kHalf = codes_per_word(kFmt) / 2;
      return pack_pair<T>(decode_element<kFmt>(word, j, g), decode_element<kFmt>(word, j + kHalf, g));
    }
  }
};

// ---- decoders of a compile-time zero domain (the GEMV) ----------------------------------------------

// How a group's zero enters w = (u - sub) * scale + add (docs/quantization.md): no zeros
// (sub = 2^(bits-1)), integer zeros (sub = zero), float zeros (sub = 2^(bits-1), add = zero).
enum ZeroDomain : int { kNoZero, kIntZero, kFloatZero };

__host__ __device__ inline int zero_domain(const PackedWeight& w) {
  return !w.zeros ? kNoZero : w.zero_is_float ? kFloatZero : kIntZero;
}

template <class T2>
__device__ __forceinline__ T2 pair_from_bits(uint32_t bits) {
  return *reinterpret_cast<const T2*>(&bits);
}

// A stored scale or zero in both halves of a T pair: one byte permute when it is already of x's
// type (the same bits the fp32 round trip gives), a conversion otherwise.
template <class T, class P>
__device__ __forceinline__ typename Pair<T>::type param_pair(uint32_t raw) {
  if constexpr (std::is_same_v<T, P>) {
    return pair_from_bits<typename Pair<T>::type>(__byte_perm(raw, 0, 0x1010));
  } else {
    const float f = param_to_float<P>(raw, DType::F32);
    return pack_pair<T>(f, f);
  }
}

// int8 codes with bf16 x and no float zero (bf16 cannot hold 128 + u exactly for 8-bit u): each
// code lands in fp32 as 2^23 + u (one byte permute) and one subtract gives u - sub exactly; the
// pair packs to bf16 exactly (|u - sub| <= 255), and one bf16 multiply applies the scale with a
// single rounding, as the fp32 route's fma does (two 8-bit significands multiply exactly in
// fp32), so the weights are bit-identical. Six instructions per pair instead of about nine.
struct Int8Bf16Decoder {
  float sub;  // 2^23 + the group's sub
  __nv_bfloat162 scale2;

  __device__ __forceinline__ __nv_bfloat162 pair(uint32_t word, int j) const {
    // Result bytes: code byte j (or j + 2), 0, 0, 0x4B: the fp32 2^23 + u.
    const float lo = __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7540 | j)) - sub;
    const float hi = __uint_as_float(__byte_perm(word, 0x4B000000u, 0x7540 | (j + 2))) - sub;
    return __hmul2(__floats2bfloat162_rn(lo, hi), scale2);
  }
};

// WordDecoder(unpack_group(w, r)) with the zero domain and P fixed at compile time: no selects,
// and the constants that do not depend on the group (sub without integer zeros, add without float
// zeros) are immediates instead of conversions per group. (Int8Bf16Decoder where it applies.)
template <int kFmt, class T, class P, int kZero>
__device__ __forceinline__ auto make_decoder(const PackedWeight& w, RawGroup r) {
  using Decoder = WordDecoder<kFmt, T>;
  using T2 = typename Decoder::T2;
  constexpr int kMid = kFmt == kFp4 ? 0 : 1 << (format_bits(kFmt) - 1);
  if constexpr (kFmt == kInt8 && std::is_same_v<T, __nv_bfloat16> && kZero != kFloatZero) {
    const float sub = kZero == kIntZero ? param_to_float<P>(r.zero, DType::F32) : float(kMid);
    return Int8Bf16Decoder{8388608.f + sub, param_pair<T, P>(r.scale)};
  } else if constexpr (kPackedRoute<kFmt, T>) {
    // kBase + kMid has the bits of the magic plus kMid in each half (kMid is below kBase's ulp span).
    T2 sub = pair_from_bits<T2>(Decoder::kMagic + kMid * 0x00010001u);
    if constexpr (kZero == kIntZero) {
      const float s = Decoder::kBase + param_to_float<P>(r.zero, DType::F32);
      sub = pack_pair<T>(s, s);
    }
    const T2 add = kZero == kFloatZero ? param_pair<T, P>(r.zero) : pair_from_bits<T2>(0);
    return Decoder(sub, param_pair<T, P>(r.scale), add);
  } else if constexpr (kFmt == kFp4) {
    return Decoder(unpack_group<kFmt, P>(w, r));
  } else {
    const float zero = param_to_float<P>(r.zero, DType::F32);
    return Decoder(GroupParams{kZero == kIntZero ? zero : float(kMid), param_to_float<P>(r.scale, DType::F32),
                               kZero == kFloatZero ? zero : 0.f});
  }
}

// ---- tensor-core product (the GEMV and the GEMM) ------------------------------------------------

// d += a . b for one m16n8k16 tile (fp32 accumulators); T picks bf16 or f16 operands.
template <class T>
__device__ __forceinline__ void mma_16816(float* d, const uint32_t* a, const uint32_t* b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

template <class T2>
__device__ __forceinline__ uint32_t as_u32(T2 v) {
  return *reinterpret_cast<uint32_t*>(&v);
}

// ---- host-side construction ----------------------------------------------------------------------

// The word view of operands in[first..] (codes, scales [, zeros]); false when the layout is one
// the word decoder cannot serve (a group that splits a word, a row that is not whole words).
inline bool make_packed_weight(const Node& n, size_t first, const QuantWeightParams& p, int64_t cols,
                               PackedWeight* w) {
  const TensorRef &codes = n.in[first], &scales = n.in[first + 1];
  const int fmt_codes = p.scheme == QuantScheme::NvFp4 ? 8 : 32 / p.bits;
  const bool whole_row = p.group == cols;
  if (codes.shape[1] % 4 != 0) return false;
  if (!whole_row && (p.group % 16 != 0 || (p.group & (p.group - 1)) != 0)) return false;
  if (whole_row && cols % fmt_codes != 0) return false;
  if (reinterpret_cast<uintptr_t>(codes.data) % 4 != 0) return false;
  int shift = 31;
  if (!whole_row) {
    shift = 0;
    while ((int64_t(1) << shift) < p.group) ++shift;
  }
  *w = PackedWeight{static_cast<const uint32_t*>(codes.data), scales.data,
                    p.has_zeros ? n.in[first + 2].data : nullptr, scales.dtype, codes.shape[0], cols,
                    codes.shape[1] / 4, scales.shape[1], shift, p.zero_is_float, p.tensor_scale};
  return true;
}

// Calls launch(std::integral_constant<int, fmt>{}) for the weight's format.
template <class Launch>
void with_format(const QuantWeightParams& p, Launch&& launch) {
  if (p.scheme == QuantScheme::NvFp4) launch(std::integral_constant<int, kFp4>{});
  else if (p.bits == 2) launch(std::integral_constant<int, kInt2>{});
  else if (p.bits == 4) launch(std::integral_constant<int, kInt4>{});
  else launch(std::integral_constant<int, kInt8>{});
}

// Calls launch(T{}) with T the element type of a float dtype.
template <class Launch>
void with_float_type(DType d, Launch&& launch) {
  if (d == DType::BF16) launch(__nv_bfloat16{});
  else if (d == DType::F16) launch(__half{});
  else launch(float{});
}

// Calls launch(P{}) with P the element type of an affine weight's scales and zeros.
template <class Launch>
void with_param_type(DType d, Launch&& launch) {
  if (d == DType::F32) launch(float{});
  else if (d == DType::F16) launch(__half{});
  else launch(__nv_bfloat16{});
}

// Calls launch(fmt, T{}, P{}) for the tensor-core kernels' instances: the weight's format, x's
// 16-bit float type (f32 x has no instance: nothing is called), and the scales' element type
// (uint8_t e4m3 for NvFp4).
template <class Launch>
void with_packed_types(const QuantWeightParams& p, DType x_dtype, DType param_dtype, Launch&& launch) {
  with_format(p, [&](auto fmt) {
    with_float_type(x_dtype, [&](auto type) {
      if constexpr (sizeof(type) == 2) {
        if constexpr (std::decay_t<decltype(fmt)>::value == kFp4) {
          launch(fmt, type, uint8_t{});
        } else {
          with_param_type(param_dtype, [&](auto param) { launch(fmt, type, param); });
        }
      }
    });
  });
}

}  // namespace etgpu::cuda
