// Quantized GEMV for decode (bf16/f16 x): out[m, n] = x[m, :] . dequant(W)[n, :].
//
// Memory-bound: the packed weights are read once with 16-byte loads and dequantized in
// registers. Instead of per-element fp32 FMAs (5+ instructions per weight, which made the int4
// case compute-bound on H100/H200), the products run on the tensor cores with mma.sync
// m16n8k16 (fp32 accumulation): a warp owns a tile of 16 weight rows, the 8 columns of the mma's
// B operand are the (up to 8) rows of x, so M = 1..8 costs the same weight traffic. Decoding is
// a shift, a lop3 and two packed instructions per pair of weights (quant.cuh). More rows of x run as passes of up to
// 8 (grid.x), the passes of one weight tile launched next to each other so the re-reads hit L2:
// still far fewer bytes than the GEMM path's bf16 copy of the weight.
//
// Latency, not bandwidth, is what a decode GEMV fights: a block streams only 16 rows (tens of
// KB), so every dependent DRAM round trip (~1 us) shows in the time. Hence:
//  - each lane keeps a ring of kDepth steps of loads in flight, and a step's loads include its
//    group scales/zeros (raw bits, converted at decode), so a step waits for one round trip;
//  - the pass's x rows are staged once in shared memory (after the first code loads are issued),
//    so consuming a step reads x at shared-memory latency instead of holding it in registers;
//  - warps per block follow the row length so that each warp has ~kDepth steps: long rows get 16
//    warps (one block per SM holds a whole tile's loads in flight), short rows 4 (several blocks
//    per SM). Warps take interleaved 64-byte slices of K and reduce through shared memory;
//  - the launch is a programmatic dependent one: the ring fills while the previous kernel drains.
// That decoding takes about as long to issue as the loads take to arrive at this size: the param type is a template argument and zero domains are selects (no branches, small
// code: instruction-cache misses showed in the stalls), and two accumulators halve the mma chain.
// Lane (g, t) of a warp reads 16 bytes of rows g and g + 8 at byte 16 t of the step: the mma's
// A fragment then holds codes of its own load, and x is staged in the matching B order.
#include <algorithm>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

constexpr int kTileRows = 16;
constexpr int kStepWords = 16;  // 4 lanes x 16 bytes of one row

constexpr int kDepth = 4;  // steps of loads in flight per lane

// Distinct groups in one lane's 4 words (1 or 2; int8's are always whole). The GEMV takes no
// int2 group of 16 (4 per step): four more registers per step in flight spill the ring.
constexpr int kMaxStepGroups = 2;
template <int kFmt>
constexpr int kStepGroups = kFmt == kInt8 ? 1 : kMaxStepGroups;

// One step's loads for a lane: 16 bytes of codes from each of its two rows, and the raw
// parameters of the groups those words fall in.
template <int kFmt>
struct StepData {
  uint4 a, b;
  RawGroup pa[kStepGroups<kFmt>], pb[kStepGroups<kFmt>];
};

// Where a warp's lane reads: its two rows and their first parameter index.
struct LaneRows {
  const uint4 *a, *b;
  int64_t param_a, param_b;
  bool two_groups;  // a lane's 4 words span two groups (else one); uniform
};

template <int kFmt, class P>
__device__ __forceinline__ void load_step(StepData<kFmt>& d, const PackedWeight& w, const LaneRows& r, int word) {
  d.a = __ldg(r.a + word / 4);
  d.b = __ldg(r.b + word / 4);
  const int64_t group = (int64_t(word) * codes_per_word(kFmt)) >> w.group_shift;
  d.pa[0] = load_raw_group<kFmt, P>(w, r.param_a + group);
  d.pb[0] = load_raw_group<kFmt, P>(w, r.param_b + group);
  if constexpr (kStepGroups<kFmt> > 1) {
    if (r.two_groups) {
      d.pa[1] = load_raw_group<kFmt, P>(w, r.param_a + group + 1);
      d.pb[1] = load_raw_group<kFmt, P>(w, r.param_b + group + 1);
    }
  }
}

// The step's B operands from the staged x row (null: an x row past M, zeros).
template <int kFmt>
__device__ __forceinline__ void load_x(uint4* xv, const uint4* x_row, int word) {
  constexpr int kVecs = codes_per_word(kFmt) / 2;  // 4 words x P elements x 2 bytes / 16
#pragma unroll
  for (int v = 0; v < kVecs; ++v) xv[v] = x_row ? x_row[word * codes_per_word(kFmt) / 8 + v] : make_uint4(0, 0, 0, 0);
}

// Words 0, 1 feed acc[0], words 2, 3 acc[1]: two independent mma chains.
template <int kFmt, class T, class P>
__device__ __forceinline__ void consume_step(const StepData<kFmt>& d, const PackedWeight& w, bool two_groups,
                                             const uint4* x_row, int word, float (*acc)[4]) {
  constexpr int kP = codes_per_word(kFmt);
  uint4 xv[kP / 2];
  load_x<kFmt>(xv, x_row, word);
  const uint32_t* ca = reinterpret_cast<const uint32_t*>(&d.a);
  const uint32_t* cb = reinterpret_cast<const uint32_t*>(&d.b);
  const uint32_t* xw = reinterpret_cast<const uint32_t*>(xv);
  using Decoder = WordDecoder<kFmt, T>;
  Decoder da(unpack_group<kFmt, P>(w, d.pa[0])), db(unpack_group<kFmt, P>(w, d.pb[0]));
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (kStepGroups<kFmt> > 1) {
      if (i == 2 && two_groups) {  // groups are >= 2 words here, so only word 2 can start one
        da = Decoder(unpack_group<kFmt, P>(w, d.pa[1]));
        db = Decoder(unpack_group<kFmt, P>(w, d.pb[1]));
      }
    }
#pragma unroll
    for (int j = 0; j < kP / 2; j += 2) {
      const uint32_t a[4] = {as_u32(da.pair(ca[i], j)), as_u32(db.pair(cb[i], j)), as_u32(da.pair(ca[i], j + 1)),
                             as_u32(db.pair(cb[i], j + 1))};
      mma_16816<T>(acc[i / 2], a, xw + i * kP / 2 + j);
    }
  }
}

// The P elements of x that meet one code word (2P bytes).
template <int kFmt>
struct alignas(codes_per_word(kFmt) >= 8 ? 16 : 8) XWord {
  uint32_t v[codes_per_word(kFmt) / 2];
};

// Copies the pass's m rows of x (K elements each) into shared memory in the mma's B order:
// each word's elements as the decoder pairs them, (x_j, x_{j+P/2}), two pairs per B register
// pair, so a step reads its operands with no permutes.
template <int kFmt>
__device__ __forceinline__ void stage_x(XWord<kFmt>* xs, const XWord<kFmt>* x, int64_t words) {
  constexpr int kQuarter = codes_per_word(kFmt) / 4;
  for (int64_t i = threadIdx.x; i < words; i += blockDim.x) {
    const XWord<kFmt> in = x[i];
    XWord<kFmt> out;
#pragma unroll
    for (int j = 0; j < kQuarter; ++j) {
      out.v[2 * j] = __byte_perm(in.v[j], in.v[j + kQuarter], 0x5410);
      out.v[2 * j + 1] = __byte_perm(in.v[j], in.v[j + kQuarter], 0x7632);
    }
    xs[i] = out;
  }
}

constexpr int kMaxWarps = 16;

template <int kFmt, class T, class P>
__global__ void __launch_bounds__(kMaxWarps * 32, 1)
    quant_gemv_kernel(PackedWeight w, const T* x, const T* bias, T* out, int m_total, int pass_rows) {
  extern __shared__ uint4 x_smem[];
  __shared__ float partial[kMaxWarps][kTileRows][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n = w.rows, r0 = int64_t(blockIdx.y) * kTileRows;
  const int m = min(pass_rows, m_total - pass_rows * static_cast<int>(blockIdx.x));
  x += int64_t(blockIdx.x) * pass_rows * w.cols;
  out += int64_t(blockIdx.x) * pass_rows * n;
  // Rows past the end read the last row (valid memory) and are not stored.
  const int64_t row_a = min(r0 + g, n - 1), row_b = min(r0 + g + 8, n - 1);
  const int steps = static_cast<int>(w.row_words / kStepWords);
  const LaneRows rows{reinterpret_cast<const uint4*>(w.codes + row_a * w.row_words),
                      reinterpret_cast<const uint4*>(w.codes + row_b * w.row_words), row_a * w.groups,
                      row_b * w.groups, ((4 * codes_per_word(kFmt)) >> w.group_shift) > 1};

  // Fill the ring before anything waits, then stage x while those loads are in flight.
  release_next_grid();
  StepData<kFmt> ring[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    const int s = warp + d * warps;
    if (s < steps) load_step<kFmt, P>(ring[d], w, rows, s * kStepWords + t * 4);
  }
  wait_previous_grid();
  stage_x<kFmt>(reinterpret_cast<XWord<kFmt>*>(x_smem), reinterpret_cast<const XWord<kFmt>*>(x),
                m * w.row_words);
  __syncthreads();
  const uint4* x_row = g < m ? x_smem + g * w.cols / 8 : nullptr;

  float acc[2][4] = {};
  for (int s0 = warp; s0 < steps; s0 += kDepth * warps) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      const int s = s0 + d * warps, next = s + kDepth * warps;
      if (s < steps) {
        consume_step<kFmt, T, P>(ring[d], w, rows.two_groups, x_row, s * kStepWords + t * 4, acc);
        if (next < steps) load_step<kFmt, P>(ring[d], w, rows, next * kStepWords + t * 4);
      }
    }
  }

  // Accumulator fragment: [0..1] = row g, x rows 2t, 2t+1; [2..3] = row g + 8.
  partial[warp][g][2 * t] = acc[0][0] + acc[1][0];
  partial[warp][g][2 * t + 1] = acc[0][1] + acc[1][1];
  partial[warp][g + 8][2 * t] = acc[0][2] + acc[1][2];
  partial[warp][g + 8][2 * t + 1] = acc[0][3] + acc[1][3];
  __syncthreads();
  for (int i = threadIdx.x; i < kTileRows * 8; i += blockDim.x) {
    const int row = i >> 3, col = i & 7;
    if (col < m && r0 + row < n) {
      float sum = 0.f;
      for (int k = 0; k < warps; ++k) sum += partial[k][row][col];
      if (bias) sum += static_cast<float>(bias[r0 + row]);
      out[col * n + r0 + row] = static_cast<T>(sum);
    }
  }
}

// The opt-in shared-memory limit of a block, less what the kernel declares statically (the
// partial sums): what staged x may use.
size_t x_smem_limit() {
  static const size_t limit = [] {
    int device = 0, optin = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    return static_cast<size_t>(optin) - sizeof(float) * kMaxWarps * kTileRows * 8;
  }();
  return limit;
}

// x rows per pass: up to 8 (the mma's columns), fewer when K is too long for them to fit in
// shared memory. 0 when not even one row fits.
int pass_rows(int64_t cols, int64_t m) {
  int rows = static_cast<int>(std::min<int64_t>(8, m));
  const size_t row_bytes = static_cast<size_t>(cols) * 2;
  while (rows > 1 && rows * row_bytes > x_smem_limit()) rows = (rows + 1) / 2;
  return row_bytes <= x_smem_limit() ? rows : 0;
}

template <int kFmt, class T, class P>
cudaError_t launch(const Context& c, const PackedWeight& w, const T* x, const T* bias, T* out, int m, int rows,
                   int warps) {
  static const bool opted_in = [] {
    return cudaFuncSetAttribute(quant_gemv_kernel<kFmt, T, P>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(x_smem_limit())) == cudaSuccess;
  }();
  (void)opted_in;  // a failure surfaces as the launch error below
  const dim3 grid(static_cast<unsigned>((m + rows - 1) / rows), static_cast<unsigned>((w.rows + kTileRows - 1) / kTileRows));
  const size_t smem = static_cast<size_t>(rows) * w.cols * sizeof(T);
  return launch_overlapped(quant_gemv_kernel<kFmt, T, P>, grid, dim3(warps * 32), smem, c.stream, w, x, bias, out,
                           m, rows);
}

}  // namespace

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m) {
  return (x.dtype == DType::BF16 || x.dtype == DType::F16) && m >= 1 && m <= kMaxGemvRows &&
         (w.rows + kTileRows - 1) / kTileRows <= 65535 && pass_rows(w.cols, m) > 0 &&
         ((4 * w.cols / w.row_words) >> w.group_shift) <= kMaxStepGroups &&
         w.row_words % kStepWords == 0 && reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
}

Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m) {
  // About kDepth steps per warp: the whole ring in flight, and the ring refilled on long rows.
  // (4 warps of <= 128 registers: four blocks per SM.)
  const int64_t steps = w.row_words / kStepWords;
  const int warps = steps >= kMaxWarps * kDepth ? kMaxWarps : steps >= 8 * kDepth ? 8 : 4;
  const int rows = pass_rows(w.cols, m);
  cudaError_t status = cudaSuccess;
  with_packed_types(p, dtype, w.param_dtype, [&](auto fmt, auto type, auto param) {
    using T = decltype(type);
    constexpr int kFmt = decltype(fmt)::value;
    status = launch<kFmt, T, decltype(param)>(c, w, static_cast<const T*>(x), static_cast<const T*>(bias),
                                              static_cast<T*>(out), static_cast<int>(m), rows, warps);
  });
  return cuda_status(status, "quant_gemv kernel");
}

}  // namespace etgpu::cuda
