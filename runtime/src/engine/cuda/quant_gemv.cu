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
// Issuing the decode takes about as long as the loads take to arrive, so a step issues little
// besides it (~150 instructions for int4, 128 of them the decode and mma; bench/NOTES.md
// 2026-11-30): the param type, the zero domain and the groups per step are template arguments
// (no selects or predicated second-group work per step), addresses are 32-bit offsets from
// per-lane bases held in registers, and two accumulators halve the mma chain.
// Lane (g, t) of a warp reads 16 bytes of rows g and g + 8 at byte 16 t of the step: the mma's
// A fragment then holds codes of its own load, and x is staged in the matching B order.
// One launch may serve up to three sibling weights that read the same x (quant_gemv_siblings: a
// layer's q/k/v, an MLP's gate/up): blockIdx.y runs over their tiles in turn, and a block works on
// its sibling exactly as on a single weight. A gate/up pair followed by its Glu instead gives each
// block 8 rows of both (its lanes' row g from gate, row g + 8 the same up row), so the epilogue
// holds gate and up of one output element and writes the Glu too.
#include <algorithm>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

constexpr int kTileRows = kGemvTileRows;
constexpr int kPairRows = kTileRows / 2;  // rows of each of a Glu pair's weights per tile
constexpr int kStepWords = 16;  // 4 lanes x 16 bytes of one row

constexpr int kDepth = 4;  // steps of loads in flight per lane

// Distinct groups in one lane's 4 words of a step: 1, or 2 (int4 g16, int2 g32, nvfp4 g16). A
// template argument (kGroups): a run-time choice costs ~20 issued instructions per step (the
// compiler predicates the second group's loads and decoders rather than branch around them). The
// GEMV takes no int2 group of 16 (4 per step): four more registers per step in flight spill the
// ring.
constexpr int kMaxStepGroups = 2;

// One step's loads for a lane: 16 bytes of codes from each of its two rows, and the raw
// parameters of the groups those words fall in.
template <int kGroups>
struct StepData {
  uint4 a, b;
  RawGroup pa[kGroups], pb[kGroups];
};

// The stored element of a scale or zero of type P (e4m3 bytes for NvFp4).
template <class P>
using RawParam = std::conditional_t<sizeof(P) == 4, uint32_t, std::conditional_t<sizeof(P) == 2, uint16_t, uint8_t>>;

// Where a lane reads: bases of its two rows' codes, scales and zeros that one 32-bit word offset
// indexes (the step's offset is all that changes per step: 64-bit index math per address cost
// ~35 instructions per step in this issue-bound loop).
template <class P>
struct LaneRows {
  const uint32_t *codes_a, *codes_b;
  const RawParam<P> *scales_a, *scales_b, *zeros_a, *zeros_b;
  int word_shift;  // word offset >> word_shift = group (group_shift less log2 of codes per word)

  // Hides the bases' origin from the compiler, which otherwise recomputes them from the kernel's
  // parameters at every step (~40 instructions) rather than hold them in registers.
  __device__ __forceinline__ void pin() {
    asm volatile("" : "+l"(codes_a), "+l"(codes_b), "+l"(scales_a), "+l"(scales_b), "+l"(zeros_a), "+l"(zeros_b));
  }
};

template <class P, int kZero>
__device__ __forceinline__ RawGroup load_group_at(const RawParam<P>* scales, const RawParam<P>* zeros, uint32_t i) {
  return {__ldg(scales + i), kZero == kNoZero ? 0u : __ldg(zeros + i)};
}

// Groups are >= 2 words when a step holds two, so the second starts at the lane's word 2.
template <class P, int kZero, int kGroups>
__device__ __forceinline__ void load_step(StepData<kGroups>& d, const LaneRows<P>& r, uint32_t word) {
  d.a = __ldg(reinterpret_cast<const uint4*>(r.codes_a + word));
  d.b = __ldg(reinterpret_cast<const uint4*>(r.codes_b + word));
  const uint32_t group = word >> r.word_shift;
#pragma unroll
  for (int q = 0; q < kGroups; ++q) {
    d.pa[q] = load_group_at<P, kZero>(r.scales_a, r.zeros_a, group + q);
    d.pb[q] = load_group_at<P, kZero>(r.scales_b, r.zeros_b, group + q);
  }
}

// 16 bytes of staged x at a shared-memory address. The address is a plain 32-bit value so that
// it can stay in a register: a pointer into the dynamic shared array gets its window base
// recomputed at every step.
__device__ __forceinline__ uint4 load_shared(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}

// Words 0, 1 feed acc[0], words 2, 3 acc[1]: two independent mma chains. x_addr: the step's B
// operands in the staged x row.
template <int kFmt, class T, class P, int kZero, int kGroups>
__device__ __forceinline__ void consume_step(const StepData<kGroups>& d, const PackedWeight& w, uint32_t x_addr,
                                             float (*acc)[4]) {
  constexpr int kP = codes_per_word(kFmt);
  uint4 xv[kP / 2];
#pragma unroll
  for (int v = 0; v < kP / 2; ++v) xv[v] = load_shared(x_addr + 16 * v);
  const uint32_t* ca = reinterpret_cast<const uint32_t*>(&d.a);
  const uint32_t* cb = reinterpret_cast<const uint32_t*>(&d.b);
  const uint32_t* xw = reinterpret_cast<const uint32_t*>(xv);
#pragma unroll
  for (int q = 0; q < kGroups; ++q) {
    const auto da = make_decoder<kFmt, T, P, kZero>(w, d.pa[q]), db = make_decoder<kFmt, T, P, kZero>(w, d.pb[q]);
#pragma unroll
    for (int i = q * 4 / kGroups; i < (q + 1) * 4 / kGroups; ++i) {
#pragma unroll
      for (int j = 0; j < kP / 2; j += 2) {
        const uint32_t a[4] = {as_u32(da.pair(ca[i], j)), as_u32(db.pair(cb[i], j)),
                               as_u32(da.pair(ca[i], j + 1)), as_u32(db.pair(cb[i], j + 1))};
        mma_16816<T>(acc[i / 2], a, xw + i * kP / 2 + j);
      }
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

// The lane's rows: row a of weight wa (the mma's A rows 0-7) and row b of wb (rows 8-15), weights
// of one shape and format: rows row and row + 8 of one weight's tile, or gate row j and up row j
// of a Glu pair. Rows past the end read the last row (valid memory) and are not stored. Offsets
// are 32-bit: a row's words and groups fit.
template <int kFmt, class P>
__device__ __forceinline__ LaneRows<P> lane_rows(const PackedWeight& wa, int64_t a, const PackedWeight& wb, int64_t b) {
  a = min(a, wa.rows - 1);
  b = min(b, wb.rows - 1);
  const auto* scales_a = static_cast<const RawParam<P>*>(wa.scales);
  const auto* scales_b = static_cast<const RawParam<P>*>(wb.scales);
  const auto* zeros_a = static_cast<const RawParam<P>*>(wa.zeros);
  const auto* zeros_b = static_cast<const RawParam<P>*>(wb.zeros);
  constexpr int kWordCodesLog2 = codes_per_word(kFmt) == 16 ? 4 : codes_per_word(kFmt) == 8 ? 3 : 2;
  return {wa.codes + a * wa.row_words, wb.codes + b * wb.row_words, scales_a + a * wa.groups, scales_b + b * wb.groups,
          zeros_a + a * wa.groups, zeros_b + b * wb.groups, wa.group_shift - kWordCodesLog2};
}

// The kernel's view of quant_gemv_siblings' weights: what they share (format, K, groups) from the
// first, and each one's own arrays, rows, NvFp4 tensor scale, bias, output and 16-row tiles.
template <class T>
struct GemvSiblings {
  PackedWeight w;
  const uint32_t* codes[kMaxGemvSiblings];
  const void* scales[kMaxGemvSiblings];
  const void* zeros[kMaxGemvSiblings];
  int64_t rows[kMaxGemvSiblings];
  float tensor_scale[kMaxGemvSiblings];
  const T* bias[kMaxGemvSiblings];
  T* out[kMaxGemvSiblings];
  int tiles[kMaxGemvSiblings];
  int count;
  T* glu;  // with a Glu (count 2): its output; tiles[0] then counts the pairs' tiles, tiles[1] is 0
  UnaryOp act;
};

// Sibling s of a group: constant indices, so the fields stay in the parameter space (an index
// computed at run time would copy the arrays to local memory).
template <class V>
__device__ __forceinline__ V sibling(const V (&values)[kMaxGemvSiblings], int s) {
  static_assert(kMaxGemvSiblings == 3, "one select per sibling");
  return s == 0 ? values[0] : s == 1 ? values[1] : values[2];
}

// A Glu pair's epilogue: partial row r < kPairRows is gate row kPairRows tile + r, row
// r + kPairRows the same up row.
// Gate, up and the Glu are stored with the Glu kernel's roundings (gate and up to T, act(gate)
// to T, then the product), so the outputs equal the three instructions run one by one.
template <class T>
__device__ __forceinline__ void store_glu_pair(const GemvSiblings<T>& group, const float (*partial)[kTileRows][8],
                                               int warps, int tile, int m, int first_row) {
  const int64_t n = group.rows[0], r0 = int64_t(tile) * kPairRows;
  for (int i = threadIdx.x; i < kPairRows * 8; i += blockDim.x) {
    const int row = i >> 3, col = i & 7;
    if (col >= m || r0 + row >= n) continue;
    float gate = 0.f, up = 0.f;
    for (int k = 0; k < warps; ++k) {
      gate += partial[k][row][col];
      up += partial[k][row + kPairRows][col];
    }
    if (group.bias[0]) gate += static_cast<float>(group.bias[0][r0 + row]);
    if (group.bias[1]) up += static_cast<float>(group.bias[1][r0 + row]);
    const T gate_t = static_cast<T>(gate), up_t = static_cast<T>(up);
    const int64_t at = (first_row + col) * n + r0 + row;
    group.out[0][at] = gate_t;
    group.out[1][at] = up_t;
    const float act = static_cast<float>(static_cast<T>(gate_activation(group.act, static_cast<float>(gate_t))));
    group.glu[at] = static_cast<T>(act * static_cast<float>(up_t));
  }
}

template <int kFmt, class T, class P, int kZero, int kGroups>
__global__ void __launch_bounds__(kMaxWarps * 32, 1)
    quant_gemv_kernel(GemvSiblings<T> group, const T* x, int m_total, int pass_rows) {
  extern __shared__ uint4 x_smem[];
  __shared__ float partial[kMaxWarps][kTileRows][8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5, g = lane >> 2, t = lane & 3;
  // The block's sibling and tile: blockIdx.y runs over the siblings' tiles in turn; with a Glu,
  // over the pairs' tiles (rows 0-7 of a tile from gate, 8-15 the same rows of up; all in
  // tiles[0], so s stays 0).
  int s = 0, tile = static_cast<int>(blockIdx.y);
  for (; s + 1 < group.count && tile >= group.tiles[s]; ++s) tile -= group.tiles[s];
  PackedWeight w = group.w;
  w.codes = sibling(group.codes, s);
  w.scales = sibling(group.scales, s);
  w.zeros = sibling(group.zeros, s);
  w.rows = sibling(group.rows, s);
  w.tensor_scale = sibling(group.tensor_scale, s);
  const int m = min(pass_rows, m_total - pass_rows * static_cast<int>(blockIdx.x));
  x += int64_t(blockIdx.x) * pass_rows * w.cols;
  LaneRows<P> rows;
  if (group.glu) {
    PackedWeight up = w;
    up.codes = group.codes[1];
    up.scales = group.scales[1];
    up.zeros = group.zeros[1];
    rows = lane_rows<kFmt, P>(w, int64_t(tile) * kPairRows + g, up, int64_t(tile) * kPairRows + g);
  } else {
    rows = lane_rows<kFmt, P>(w, int64_t(tile) * kTileRows + g, w, int64_t(tile) * kTileRows + g + 8);
  }

  // The lane's word offset (of its step's first word) advances one slice of the warps' steps per
  // ring slot; the ring holds the loads of kDepth slices ahead of it. (32 bits: staged x limits
  // a row to well under 2^32 words.)
  const uint32_t row_words = static_cast<uint32_t>(w.row_words);
  uint32_t slice = warps * kStepWords, ahead = kDepth * slice, word = warp * kStepWords + t * 4;

  // Fill the ring before anything waits, then stage x while those loads are in flight.
  release_next_grid();
  StepData<kGroups> ring[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    if (word + d * slice < row_words) load_step<P, kZero>(ring[d], rows, word + d * slice);
  }
  wait_previous_grid();
  stage_x<kFmt>(reinterpret_cast<XWord<kFmt>*>(x_smem), reinterpret_cast<const XWord<kFmt>*>(x),
                m * w.row_words);
  __syncthreads();
  // Rows past m read row m - 1: they only feed the mma's columns past m, which are not stored.
  // A word's x (2P bytes) sits at x_row + 2P word.
  uint32_t x_row = smem_addr(x_smem + min(g, m - 1) * w.cols / 8);

  float acc[2][4] = {};
  while (word < row_words) {
    // Loop-invariant, but pinned in registers like the bases: rematerialising them costs more.
    rows.pin();
    asm volatile("" : "+r"(x_row), "+r"(slice), "+r"(ahead));
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (word < row_words) {
        consume_step<kFmt, T, P, kZero>(ring[d], w, x_row + word * 2 * codes_per_word(kFmt), acc);
        if (word + ahead < row_words) load_step<P, kZero>(ring[d], rows, word + ahead);
      }
      word += slice;
    }
  }

  // Accumulator fragment: [0..1] = row g, x rows 2t, 2t+1; [2..3] = row g + 8.
  partial[warp][g][2 * t] = acc[0][0] + acc[1][0];
  partial[warp][g][2 * t + 1] = acc[0][1] + acc[1][1];
  partial[warp][g + 8][2 * t] = acc[0][2] + acc[1][2];
  partial[warp][g + 8][2 * t + 1] = acc[0][3] + acc[1][3];
  __syncthreads();
  if (group.glu) {
    store_glu_pair(group, partial, warps, tile, m, static_cast<int>(blockIdx.x) * pass_rows);
    return;
  }
  // Reread from the parameters rather than held through the loop (registers are at the cap).
  const int64_t n = sibling(group.rows, s), r0 = int64_t(tile) * kTileRows;
  const T* bias = sibling(group.bias, s);
  T* out = sibling(group.out, s) + int64_t(blockIdx.x) * pass_rows * n;
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

template <int kFmt, class T, class P, int kZero, int kGroups>
cudaError_t launch(const Context& c, const GemvSiblings<T>& group, const T* x, int m, int rows, int warps) {
  constexpr auto kernel = quant_gemv_kernel<kFmt, T, P, kZero, kGroups>;
  if (const cudaError_t e = allow_dynamic_smem<kernel>(x_smem_limit()); e != cudaSuccess) return e;
  int64_t tiles = 0;  // blocks along y: every sibling's tiles
  for (int s = 0; s < group.count; ++s) tiles += group.tiles[s];
  const dim3 grid(static_cast<unsigned>((m + rows - 1) / rows), static_cast<unsigned>(tiles));
  const size_t smem = static_cast<size_t>(rows) * group.w.cols * sizeof(T);
  return launch_overlapped(kernel, grid, dim3(warps * 32), smem, c.stream, group, x, m, rows);
}

// Calls launch(zero domain, groups per step) as integral constants for the weight (NvFp4 has no
// zeros; int8's 16 codes per step never span two groups).
template <int kFmt, class Launch>
void with_step_kind(const PackedWeight& w, Launch&& launch) {
  using std::integral_constant;
  auto groups = [&](auto zero) {
    if constexpr (kFmt == kInt8) launch(zero, integral_constant<int, 1>{});
    else if (((4 * codes_per_word(kFmt)) >> w.group_shift) > 1) launch(zero, integral_constant<int, 2>{});
    else launch(zero, integral_constant<int, 1>{});
  };
  if constexpr (kFmt == kFp4) {
    groups(integral_constant<int, kNoZero>{});
  } else {
    const int domain = zero_domain(w);
    if (domain == kIntZero) groups(integral_constant<int, kIntZero>{});
    else if (domain == kFloatZero) groups(integral_constant<int, kFloatZero>{});
    else groups(integral_constant<int, kNoZero>{});
  }
}

}  // namespace

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m) {
  return (x.dtype == DType::BF16 || x.dtype == DType::F16) && m >= 1 &&
         gemv_tiles(w.rows) <= kMaxGemvTiles && pass_rows(w.cols, m) > 0 &&
         ((4 * w.cols / w.row_words) >> w.group_shift) <= kMaxStepGroups &&
         w.row_words % kStepWords == 0 && reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x.data) % 16 == 0;
}

Status quant_gemv_siblings(const Context& c, const QuantWeightParams& p, const GemvSibling* siblings, int count,
                           const void* x, DType dtype, int64_t m, const GemvGlu* glu) {
  const PackedWeight& w = *siblings[0].w;
  // About kDepth steps per warp: the whole ring in flight, and the ring refilled on long rows.
  // (4 warps of <= 128 registers: four blocks per SM.)
  const int64_t steps = w.row_words / kStepWords;
  const int warps = steps >= kMaxWarps * kDepth ? kMaxWarps : steps >= 8 * kDepth ? 8 : 4;
  const int rows = pass_rows(w.cols, m);
  cudaError_t status = cudaSuccess;
  with_packed_types(p, dtype, w.param_dtype, [&](auto fmt, auto type, auto param) {
    using T = decltype(type);
    constexpr int kFmt = decltype(fmt)::value;
    GemvSiblings<T> group{w, {}, {}, {}, {}, {}, {}, {}, {}, count, nullptr, UnaryOp::Silu};
    if (glu) {
      group.glu = static_cast<T*>(glu->out);
      group.act = glu->act;
    }
    for (int s = 0; s < count; ++s) {
      const PackedWeight& ws = *siblings[s].w;
      group.codes[s] = ws.codes;
      group.scales[s] = ws.scales;
      group.zeros[s] = ws.zeros;
      group.rows[s] = ws.rows;
      group.tensor_scale[s] = ws.tensor_scale;
      group.bias[s] = static_cast<const T*>(siblings[s].bias);
      group.out[s] = static_cast<T*>(siblings[s].out);
      group.tiles[s] = static_cast<int>(gemv_tiles(ws.rows));
    }
    if (glu) {  // each tile takes kPairRows rows of gate and of up
      group.tiles[0] = static_cast<int>((w.rows + kPairRows - 1) / kPairRows);
      group.tiles[1] = 0;
    }
    with_step_kind<kFmt>(w, [&](auto zero, auto groups) {
      status = launch<kFmt, T, decltype(param), decltype(zero)::value, decltype(groups)::value>(
          c, group, static_cast<const T*>(x), static_cast<int>(m), rows, warps);
    });
  });
  return cuda_status(status, "quant_gemv kernel");
}

Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m) {
  const GemvSibling one{&w, bias, out};
  return quant_gemv_siblings(c, p, &one, 1, x, dtype, m);
}

}  // namespace etgpu::cuda
