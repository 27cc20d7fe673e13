// The CUDA kernels' index arithmetic (engine/cuda/index_math.h), run on the host: the 32-bit
// invariant divisor against exact division, and coalesced indexers of both index types against
// a plain per-coordinate walk. GPU parity tests only reach the 32-bit path (their tensors are
// small), so the 64-bit one, taken by tensors of 2^31 elements or more, is covered here.
#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "engine/cuda/index_math.h"

namespace etgpu::cuda {
namespace {

void expect_divides(uint32_t d, uint32_t n) {
  const DivMod<uint32_t> dm(d);
  uint32_t rem = 0;
  const uint32_t q = dm.divmod(n, rem);
  ASSERT_EQ(q, n / d) << n << " / " << d;
  ASSERT_EQ(rem, n % d) << n << " % " << d;
}

TEST(DivMod32, MatchesDivisionNearMultiplesAndLimits) {
  std::vector<uint32_t> divisors;
  for (uint32_t d = 1; d <= 4096; ++d) divisors.push_back(d);
  for (int b = 12; b <= 31; ++b) {
    for (int64_t delta = -3; delta <= 3; ++delta) {
      const int64_t d = (int64_t(1) << b) + delta;
      if (d >= 1 && d < kIndex32Limit) divisors.push_back(static_cast<uint32_t>(d));
    }
  }
  for (uint32_t d : {3u * 7u * 11u * 13u, 640u, 2048u * 3u, 128256u, 151936u, 1000003u}) divisors.push_back(d);
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> any(0, uint32_t(kIndex32Limit - 1));
  for (uint32_t d : divisors) {
    const uint32_t top = uint32_t(kIndex32Limit - 1);
    for (uint32_t n : {0u, 1u, d - 1, d, d + 1, top, top - 1, top - top % d, top - top % d - 1}) {
      if (n <= top) expect_divides(d, n);
    }
    for (int i = 0; i < 64; ++i) {  // multiples of d and their neighbours: where rounding errs
      const uint32_t m = any(rng) / d * d;
      expect_divides(d, m);
      if (m > 0) expect_divides(d, m - 1);
      if (m < top) expect_divides(d, m + 1);
      expect_divides(d, any(rng));
    }
  }
}

// Plain reference: the coordinates of `linear` in the walk's shape, times each operand's strides.
template <int K>
std::vector<int64_t> reference_offsets(const OperandWalk<K>& w, int64_t linear) {
  std::vector<int64_t> out(w.base, w.base + K);
  for (int d = w.rank - 1; d >= 0; --d) {
    const int64_t idx = linear % w.shape[d];
    linear /= w.shape[d];
    for (int k = 0; k < K; ++k) out[k] += idx * w.strides[k][d];
  }
  return out;
}

template <int K, class I>
void expect_offsets(const OperandWalk<K>& w, const Indexer<K, I>& ix, int64_t linear) {
  I got[K];
  ix.offsets(static_cast<I>(linear), got);
  const std::vector<int64_t> want = reference_offsets(w, linear);
  for (int k = 0; k < K; ++k) ASSERT_EQ(static_cast<int64_t>(got[k]), want[k]) << "operand " << k << " at " << linear;
}

// Random walks over two operands like the kernels see them: broadcast (stride 0), permuted,
// sliced (stride > contiguous, a base), size-1 dims, contiguous runs the coalescing merges.
TEST(Indexer, BothIndexTypesMatchThePlainWalk) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 400; ++trial) {
    OperandWalk<2> w;
    w.rank = static_cast<int>(rng() % 6);
    for (int d = 0; d < w.rank; ++d) w.shape[d] = rng() % 3 == 0 ? 1 : 1 + rng() % 5;
    for (int k = 0; k < 2; ++k) {
      int64_t s = 1 + (rng() % 3 == 0 ? rng() % 3 : 0);  // sometimes not packed
      std::vector<int> order(w.rank);
      for (int d = 0; d < w.rank; ++d) order[d] = w.rank - 1 - d;
      if (rng() % 3 == 0) std::shuffle(order.begin(), order.end(), rng);  // permuted
      for (int d : order) {
        w.strides[k][d] = rng() % 4 == 0 ? 0 : s;
        s *= w.shape[d] + (rng() % 4 == 0 ? 1 : 0);
      }
      w.base[k] = rng() % 3 == 0 ? rng() % 7 : 0;
    }
    const auto narrow = w.indexer<uint32_t>();
    const auto wide = w.indexer<int64_t>();
    EXPECT_LE(narrow.rank, w.rank);
    for (int64_t i = 0; i < w.numel(); ++i) {
      expect_offsets(w, narrow, i);
      expect_offsets(w, wide, i);
    }
  }
}

TEST(Indexer, CoalescingLeavesOneDimPerBroadcastBoundary) {
  // RoPE's tables over q [1, 32, 1, 64]: cos [1, 1, 1, 64] -> [32 x 64], x contiguous.
  TensorRef q{nullptr, DType::BF16, 4, {1, 32, 1, 64}}, cos{nullptr, DType::BF16, 4, {1, 1, 1, 64}};
  const TensorRef* ops[2] = {&q, &cos};
  const OperandWalk<2> w = broadcast_walk<2>(q, ops);
  const auto ix = w.indexer<uint32_t>();
  EXPECT_EQ(ix.rank, 2);
  EXPECT_TRUE(ix.contiguous[0]);
  EXPECT_FALSE(ix.contiguous[1]);
  for (int64_t i = 0; i < w.numel(); ++i) expect_offsets(w, ix, i);
}

TEST(Indexer, WidePathBeyond32Bits) {
  // [3, 2^31 + 5] + a broadcast row [2^31 + 5]: 64-bit linear indices and offsets.
  const int64_t n = kIndex32Limit + 5;
  TensorRef out{nullptr, DType::U8, 2, {3, n}}, row{nullptr, DType::U8, 1, {n}};
  const TensorRef* ops[2] = {&out, &row};
  const OperandWalk<2> w = broadcast_walk<2>(out, ops);
  EXPECT_FALSE(w.fits_index32());
  const auto ix = w.indexer<int64_t>();
  for (int64_t i : {int64_t(0), n - 1, n, n + 1, 2 * n + 7, 3 * n - 1}) expect_offsets(w, ix, i);
}

// Row (b, h, l) of [B, H, L] order moves to (b, l, h) of [B, L, H] order, in both index types;
// element() keeps the place within a row; off, both are the identity.
template <class I>
void expect_seq_major_rows(int64_t heads, int64_t seq) {
  const SeqMajorRows<I> rows(true, heads, seq), off(false, heads, seq);
  const DivMod<I> width(5);
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t l = 0; l < seq; ++l) {
        const I row = static_cast<I>((b * heads + h) * seq + l), moved = static_cast<I>((b * seq + l) * heads + h);
        ASSERT_EQ(rows.row(row), moved) << heads << " heads, " << seq << " rows: " << row;
        ASSERT_EQ(rows.element(row * 5 + 3, width), moved * 5 + 3);
        ASSERT_EQ(off.row(row), row);
        ASSERT_EQ(off.element(row * 5 + 3, width), row * 5 + 3);
      }
    }
  }
}

TEST(SeqMajorRows, MovesEachRowToItsTransposedPlace) {
  for (auto [heads, seq] : {std::pair<int64_t, int64_t>{1, 1}, {3, 5}, {8, 1}, {1, 7}, {32, 13}}) {
    expect_seq_major_rows<uint32_t>(heads, seq);
    expect_seq_major_rows<int64_t>(heads, seq);
  }
}

TEST(OperandWalk, Fits32ByLargestOffset) {
  OperandWalk<1> w;
  w.rank = 1;
  w.shape[0] = kIndex32Limit - 1;  // linear index and offset up to 2^31 - 2
  w.strides[0][0] = 1;
  EXPECT_TRUE(w.fits_index32());
  w.base[0] = 1;  // largest offset 2^31 - 1
  EXPECT_TRUE(w.fits_index32());
  w.base[0] = 2;  // 2^31
  EXPECT_FALSE(w.fits_index32());
  w.base[0] = 0;
  w.shape[0] = 1 << 20;
  w.strides[0][0] = 2049;  // a strided view reaching past 2^31 with few elements
  EXPECT_FALSE(w.fits_index32());
  w.strides[0][0] = 2048;  // last offset (2^20 - 1) * 2^11 < 2^31
  EXPECT_TRUE(w.fits_index32());
  w.shape[0] = kIndex32Limit;  // the linear index itself
  w.strides[0][0] = 0;
  EXPECT_FALSE(w.fits_index32());
}

}  // namespace
}  // namespace etgpu::cuda
