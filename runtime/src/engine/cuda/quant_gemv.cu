// Quantized GEMV for decode (bf16/f16 x): out[m, n] = x[m, :] . dequant(W)[n, :].
//
// Memory-bound: the packed weights are read once with 16-byte loads and dequantized in
// registers. Instead of per-element fp32 FMAs (5+ instructions per weight, which made the int4
// case compute-bound on H100/H200), the products run on the tensor cores with mma.sync
// m16n8k16 (fp32 accumulation): a warp owns a tile of 16 weight rows, the 8 columns of the mma's
// B operand are the (up to 8) rows of x, so M = 1..8 costs the same weight traffic. Decoding is
// two packed instructions per pair of weights (quant.cuh). Up to 64 rows of x run as chunks of 8
// (grid.x), the chunks of one weight tile launched next to each other so the re-reads hit L2:
// still far fewer bytes than the GEMM path's bf16 copy of the weight.
//
// Work split: a block of 8 or 16 warps owns one 16-row tile; its warps take interleaved 64-byte
// slices of K (split-K inside the block, reduced through shared memory), and each lane keeps two
// steps (4 x 16 bytes) of loads in flight. Long rows (>= 32 steps) get 16 warps: N = 2048 is only
// 128 tiles, one block per SM, and 8 warps would keep just 16 KB per SM in flight (about half of
// what HBM needs to stream at full rate); short rows keep 8 warps so each still has 2 steps.
// Lane (g, t) of a warp reads 16 bytes of rows g and g + 8 at byte 16 t of the step: the mma's
// A fragment then holds codes of its own load, and x is permuted to the same K order.
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

constexpr int kTileRows = 16;
constexpr int kStepWords = 16;  // 4 lanes x 16 bytes of one row

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

// One step's loads for a lane: 16 bytes of codes from each of its two rows, and the matching
// 4 P elements of its x row (zeros for lanes whose x row is past M).
template <int kFmt>
struct StepData {
  static constexpr int kXVecs = codes_per_word(kFmt) / 2;  // 4 words x P elements x 2 bytes / 16
  uint4 a, b;
  uint4 x[kXVecs];
};

template <int kFmt>
__device__ __forceinline__ void load_step(StepData<kFmt>& d, const uint4* row_a, const uint4* row_b,
                                          const uint4* x_row, int64_t word) {
  d.a = __ldg(row_a + word / 4);
  d.b = __ldg(row_b + word / 4);
  constexpr int kP = codes_per_word(kFmt);
#pragma unroll
  for (int v = 0; v < StepData<kFmt>::kXVecs; ++v) {
    d.x[v] = x_row ? x_row[word * kP / 8 + v] : make_uint4(0, 0, 0, 0);
  }
}

template <int kFmt, class T>
__device__ __forceinline__ void consume_step(const StepData<kFmt>& d, const PackedWeight& w, int64_t row_a,
                                             int64_t row_b, int64_t word, float* acc) {
  constexpr int kP = codes_per_word(kFmt);
  const uint32_t* ca = reinterpret_cast<const uint32_t*>(&d.a);
  const uint32_t* cb = reinterpret_cast<const uint32_t*>(&d.b);
  const uint32_t* xw = reinterpret_cast<const uint32_t*>(d.x);
  // A group of >= 4 P codes covers the lane's whole 16 bytes: one parameter load per step.
  const bool one_group = w.group_shift >= __ffs(4 * kP) - 1;
  using Decoder = WordDecoder<kFmt, T>;
  Decoder da(GroupParams{}), db(GroupParams{});
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if (i == 0 || !one_group) {
      const int64_t group = ((word + i) * kP) >> w.group_shift;
      da = Decoder(load_group<kFmt>(w, row_a, group));
      db = Decoder(load_group<kFmt>(w, row_b, group));
    }
#pragma unroll
    for (int j = 0; j < kP / 2; j += 2) {
      const uint32_t a[4] = {as_u32(da.pair(ca[i], j)), as_u32(db.pair(cb[i], j)), as_u32(da.pair(ca[i], j + 1)),
                             as_u32(db.pair(cb[i], j + 1))};
      // x pairs in the decoder's order: (x_j, x_{j+P/2}) of this word's P elements.
      const uint32_t* xs = xw + i * kP / 2;
      const uint32_t b[2] = {__byte_perm(xs[j / 2], xs[j / 2 + kP / 4], 0x5410),
                             __byte_perm(xs[j / 2], xs[j / 2 + kP / 4], 0x7632)};
      mma_16816<T>(acc, a, b);
    }
  }
}

template <int kFmt, class T, int kWarps>
__global__ void __launch_bounds__(kWarps * 32) quant_gemv_kernel(PackedWeight w, const T* x, const T* bias,
                                                                 T* out, int m_total) {
  __shared__ float partial[kWarps][kTileRows][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n = w.rows, r0 = int64_t(blockIdx.y) * kTileRows;
  // This block's chunk of (at most) 8 x rows.
  const int m = min(8, m_total - 8 * static_cast<int>(blockIdx.x));
  x += int64_t(blockIdx.x) * 8 * w.cols;
  out += int64_t(blockIdx.x) * 8 * n;
  // Rows past the end read the last row (valid memory) and are not stored.
  const int64_t row_a = min(r0 + g, n - 1), row_b = min(r0 + g + 8, n - 1);
  const uint4* pa = reinterpret_cast<const uint4*>(w.codes + row_a * w.row_words);
  const uint4* pb = reinterpret_cast<const uint4*>(w.codes + row_b * w.row_words);
  const uint4* px = g < m ? reinterpret_cast<const uint4*>(x + g * w.cols) : nullptr;
  const int64_t steps = w.row_words / kStepWords;

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  StepData<kFmt> s0, s1;
  int64_t s = warp;
  // Two steps loaded before either is used: more bytes in flight per lane.
  for (; s + kWarps < steps; s += 2 * kWarps) {
    const int64_t w0 = s * kStepWords + t * 4, w1 = (s + kWarps) * kStepWords + t * 4;
    load_step<kFmt>(s0, pa, pb, px, w0);
    load_step<kFmt>(s1, pa, pb, px, w1);
    consume_step<kFmt, T>(s0, w, row_a, row_b, w0, acc);
    consume_step<kFmt, T>(s1, w, row_a, row_b, w1, acc);
  }
  if (s < steps) {
    const int64_t w0 = s * kStepWords + t * 4;
    load_step<kFmt>(s0, pa, pb, px, w0);
    consume_step<kFmt, T>(s0, w, row_a, row_b, w0, acc);
  }

  // Accumulator fragment: acc[0..1] = row g, x rows 2t, 2t+1; acc[2..3] = row g + 8.
  partial[warp][g][2 * t] = acc[0];
  partial[warp][g][2 * t + 1] = acc[1];
  partial[warp][g + 8][2 * t] = acc[2];
  partial[warp][g + 8][2 * t + 1] = acc[3];
  __syncthreads();
  if (threadIdx.x < kTileRows * 8) {
    const int row = threadIdx.x >> 3, col = threadIdx.x & 7;
    if (col < m && r0 + row < n) {
      float sum = 0.f;
#pragma unroll
      for (int k = 0; k < kWarps; ++k) sum += partial[k][row][col];
      if (bias) sum += static_cast<float>(bias[r0 + row]);
      out[col * n + r0 + row] = static_cast<T>(sum);
    }
  }
}

}  // namespace

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m) {
  return (x.dtype == DType::BF16 || x.dtype == DType::F16) && m >= 1 && m <= kMaxGemvRows &&
         (w.rows + kTileRows - 1) / kTileRows <= 65535 &&
         w.row_words % kStepWords == 0 && reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
}

Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m) {
  const dim3 grid(static_cast<unsigned>((m + 7) / 8), static_cast<unsigned>((w.rows + kTileRows - 1) / kTileRows));
  const bool long_rows = w.row_words / kStepWords >= 32;
  with_format(p, [&](auto fmt) {
    constexpr int kFmt = decltype(fmt)::value;
    with_float_type(dtype, [&](auto type) {
      using T = decltype(type);
      if constexpr (sizeof(T) == 2) {
        const T *xt = static_cast<const T*>(x), *bt = static_cast<const T*>(bias);
        T* ot = static_cast<T*>(out);
        const int rows = static_cast<int>(m);
        if (long_rows) quant_gemv_kernel<kFmt, T, 16><<<grid, 16 * 32, 0, c.stream>>>(w, xt, bt, ot, rows);
        else quant_gemv_kernel<kFmt, T, 8><<<grid, 8 * 32, 0, c.stream>>>(w, xt, bt, ot, rows);
      }
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("quant_gemv kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
