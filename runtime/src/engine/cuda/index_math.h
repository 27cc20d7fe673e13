// Index arithmetic of the elementwise-style kernels, compiled for the device and (for the C++
// tests) the host. A decode step's small kernels are latency-bound, and a 64-bit division by a
// runtime value is a long dependent instruction sequence (a subroutine call); a 32-bit division by
// a divisor fixed at launch is a multiply-high and a shift. So these kernels are instantiated for
// an index type I: uint32_t when every offset they form is below 2^31 (decided on the host), else
// int64_t; DivMod<I> divides in that type. Offsets are element counts; strides are never negative.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

#if defined(__CUDACC__)
#define ETGPU_HD __host__ __device__ __forceinline__
#else
#define ETGPU_HD inline
#endif

namespace etgpu::cuda {

// The 32-bit path serves linear indices and offsets below this.
constexpr int64_t kIndex32Limit = int64_t(1) << 31;
inline bool fits_index32(int64_t elements) { return elements < kIndex32Limit; }

template <class I>
struct DivMod;

// Division of n < 2^31 by d (1 <= d < 2^31) fixed on the host, by invariant-integer
// multiplication (Granlund & Montgomery 1994): with l = ceil(log2 d) and m = ceil(2^(31+l) / d),
// m < 2^32 and n / d = floor(n * m / 2^(31+l)) for every n < 2^31, because the excess
// m * d - 2^(31+l) is below d <= 2^l and n < 2^31, so it never carries past the next multiple.
// Evaluated as mulhi(2n, m) >> l, which also covers d = 1 (m = 2^31, l = 0) without a branch.
template <>
struct DivMod<uint32_t> {
  uint32_t d = 1, mul = 1u << 31, shift = 0;

  DivMod() = default;
  explicit DivMod(int64_t divisor) {
    d = divisor < 1 ? 1u : static_cast<uint32_t>(divisor);
    while ((uint64_t(1) << shift) < d) ++shift;
    mul = static_cast<uint32_t>(((uint64_t(1) << (31 + shift)) + d - 1) / d);
  }
  ETGPU_HD uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    return __umulhi(n << 1, mul) >> shift;
#else
    return static_cast<uint32_t>((uint64_t(n << 1) * mul) >> 32) >> shift;
#endif
  }
  // Returns n / d and sets rem = n % d.
  ETGPU_HD uint32_t divmod(uint32_t n, uint32_t& rem) const {
    const uint32_t q = div(n);
    rem = n - q * d;
    return q;
  }
};

// The wide path (tensors of 2^31 elements or more): plain division.
template <>
struct DivMod<int64_t> {
  int64_t d = 1;

  DivMod() = default;
  explicit DivMod(int64_t divisor) : d(divisor < 1 ? 1 : divisor) {}
  ETGPU_HD int64_t div(int64_t n) const { return n / d; }
  ETGPU_HD int64_t divmod(int64_t n, int64_t& rem) const {
    const int64_t q = n / d;
    rem = n - q * d;
    return q;
  }
};

// Where row (b, h, l) of a [B, H, L, D] value is stored: at (b * H + h) * L + l, its own place,
// or when seq-major at (b * L + l) * H + h, the [B, L, H, D] layout a projection's heads have
// before attention's transpose(1, 2). Every kernel that reads such an operand or writes such a
// result (Rope's and IndexCopy's x_seq_major, Sdpa's out_seq_major) addresses its rows with this,
// so the transpose needs no copy of its own. Off (the default), it is the identity.
template <class I>
struct SeqMajorRows {
  DivMod<I> heads, seq;
  bool on = false;

  SeqMajorRows() = default;
  SeqMajorRows(bool seq_major, int64_t h, int64_t l)
      : heads(seq_major ? h : 1), seq(seq_major ? l : 1), on(seq_major) {}

  ETGPU_HD I row(I r) const {
    if (!on) return r;
    I l, h;
    const I b = heads.divmod(seq.divmod(r, l), h);
    return (b * seq.d + l) * heads.d + h;
  }

  // Where element i of the [B, H, L] rows' order is stored, rows being width.d elements wide.
  ETGPU_HD I element(I i, const DivMod<I>& width) const {
    if (!on) return i;
    I q;
    const I r = width.divmod(i, q);
    return row(r) * width.d + q;
  }
};

// Offsets of K operands walked together in the row-major order of one shape. Built on the host
// by OperandWalk::indexer (coalesced: dims that need no division are gone), passed by value.
template <int K, class I>
struct Indexer {
  int rank = 0;
  DivMod<I> size[kMaxRank];  // size[0] is never divided by: the outermost index is what is left
  I strides[K][kMaxRank] = {};
  I base[K] = {};
  bool contiguous[K] = {};  // offset == linear index: no division needed for this operand

  ETGPU_HD void offsets(I linear, I* out) const {
    bool all = true;
    for (int k = 0; k < K; ++k) {
      out[k] = contiguous[k] ? linear : base[k];
      all &= contiguous[k];
    }
    if (all || rank == 0) return;
    I rest = linear;
    for (int d = rank - 1; d > 0; --d) {
      I idx;
      rest = size[d].divmod(rest, idx);
      for (int k = 0; k < K; ++k) {
        if (!contiguous[k]) out[k] += idx * strides[k][d];
      }
    }
    for (int k = 0; k < K; ++k) {
      if (!contiguous[k]) out[k] += rest * strides[k][0];
    }
  }
};

// Host side: K operands over a shape, operand k's element at coordinates c being
// base[k] + sum_d c[d] * strides[k][d] (a stride of 0 broadcasts).
template <int K>
struct OperandWalk {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[K][kMaxRank] = {};
  int64_t base[K] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= shape[d];
    return n;
  }

  // True when the linear index and every operand's offset stay below 2^31.
  bool fits_index32() const {
    if (!etgpu::cuda::fits_index32(numel())) return false;
    for (int k = 0; k < K; ++k) {
      int64_t last = base[k];
      for (int d = 0; d < rank; ++d) {
        if (strides[k][d] < 0) return false;
        last += (shape[d] - 1) * strides[k][d];
      }
      if (base[k] < 0 || !etgpu::cuda::fits_index32(last)) return false;
    }
    return true;
  }

  // The same walk with fewer dims: size-1 dims dropped, and a dim merged into its inner
  // neighbour where every operand steps over that neighbour as one block. Each merge saves a
  // division per element in Indexer::offsets.
  OperandWalk coalesced() const {
    OperandWalk w;
    for (int k = 0; k < K; ++k) w.base[k] = base[k];
    for (int d = 0; d < rank; ++d) {
      if (shape[d] == 1) continue;
      // Dims go outer to inner: d joins the last kept dim p when every operand's stride of p
      // spans all of d; the merged dim steps at d's stride.
      bool merge = w.rank > 0;
      for (int k = 0; k < K && merge; ++k) merge = w.strides[k][w.rank - 1] == strides[k][d] * shape[d];
      if (merge) {
        w.shape[w.rank - 1] *= shape[d];
        for (int k = 0; k < K; ++k) w.strides[k][w.rank - 1] = strides[k][d];
        continue;
      }
      w.shape[w.rank] = shape[d];
      for (int k = 0; k < K; ++k) w.strides[k][w.rank] = strides[k][d];
      ++w.rank;
    }
    return w;
  }

  template <class I>
  Indexer<K, I> indexer() const {
    const OperandWalk w = coalesced();
    Indexer<K, I> ix;
    ix.rank = w.rank;
    for (int d = 0; d < w.rank; ++d) ix.size[d] = DivMod<I>(w.shape[d]);
    for (int k = 0; k < K; ++k) {
      ix.base[k] = static_cast<I>(w.base[k]);
      bool contiguous = w.base[k] == 0;
      int64_t expect = 1;
      for (int d = w.rank - 1; d >= 0; --d) {
        ix.strides[k][d] = static_cast<I>(w.strides[k][d]);
        contiguous &= w.strides[k][d] == expect;
        expect *= w.shape[d];
      }
      ix.contiguous[k] = contiguous;
    }
    return ix;
  }
};

// Element strides of `x` broadcast (right-aligned) to `out`'s rank: 0 where x has size 1.
inline void broadcast_strides(const TensorRef& x, const TensorRef& out, int64_t* strides) {
  for (int d = 0; d < out.rank; ++d) strides[d] = 0;
  int64_t s = 1;
  for (int i = 1; i <= x.rank; ++i) {
    const int64_t size = x.shape[x.rank - i];
    strides[out.rank - i] = size == 1 ? 0 : s;
    s *= size;
  }
}

// A walk over `out` whose K operands broadcast to it.
template <int K>
OperandWalk<K> broadcast_walk(const TensorRef& out, const TensorRef* const* operands) {
  OperandWalk<K> w;
  w.rank = out.rank;
  for (int d = 0; d < out.rank; ++d) w.shape[d] = out.shape[d];
  for (int k = 0; k < K; ++k) broadcast_strides(*operands[k], out, w.strides[k]);
  return w;
}

// Calls f(uint32_t{}) when `narrow` (the 32-bit path is exact), else f(int64_t{}).
template <class F>
void with_index_type(bool narrow, F&& f) {
  if (narrow) f(uint32_t{});
  else f(int64_t{});
}

}  // namespace etgpu::cuda
