// Quantized GEMV for decode (bf16/f16 x, M <= 64): out[m, n] = x[m, :] . dequant(W)[n, :].
//
// The products run on the tensor cores (mma.sync m16n8k16, fp32 accumulation): a warp's A operand
// is 16 weight rows decoded in registers (quant.cuh: a shift, a lop3 and two packed instructions
// per pair of weights), B is up to 8 rows of x, so M = 1..8 costs the same weight traffic. More
// rows run as passes of 8 (grid.y), next to each other so their re-reads of a tile hit L2.
//
// The time is streaming the packed weights once. What held it at ~40% of copy bandwidth, and
// what this shape does about it (bench/NOTES.md has the numbers):
//  - In a decode graph a GEMV follows another kernel. Programmatic dependent launch lets it issue
//    its weight loads while the previous kernel still runs, but only if its blocks fit on the SMs
//    beside the previous kernel's. The old kernel used 109-126 registers per thread, so one GEMV
//    filled the register file and the next one's blocks waited for it to exit: every launch paid
//    its own launch, DRAM latency and ramp (a few us of a ~6.5 us call). Now the kernel is held
//    to 64 registers (__launch_bounds__(512, 2)) and a few tens of KB of shared memory, so two
//    GEMVs' blocks fit on an SM at once and the next one's loads overlap this one's tail.
//  - A block owns a 16-row tile and a chunk of at most 64 K steps (64 bytes of a row each). Its
//    warps take every warps-th step, at most kDepth of them, and issue ALL their code loads at
//    once, before griddepcontrol.wait: no refill loop, the chunk (<= 64 KB of codes) in flight in
//    one go, ~64-80 KB per SM for the bench's shapes (bandwidth x latency is ~30 KB per SM).
//  - The group scales/zeros of the chunk are staged in shared memory, also before the wait, with
//    coalesced loads (a tile's parameter rows are contiguous) instead of per-lane 2-byte loads
//    that touched 8 rows' sectors each; the code registers then hold codes only.
//  - x (written by the previous kernel) is staged after the wait, the chunk's slice only, in the
//    decoder's pair order (no permutes in the loop).
//  - A row longer than 64 steps, or a grid of fewer than half as many blocks as SMs (the k/v
//    projections' 512-1024 rows), splits K into chunks that run as one thread-block cluster
//    (sm_90); their partial sums meet in distributed shared memory, in chunk order: deterministic,
//    no workspace, no atomics. The bench's shapes need no cluster: int4 2048 x 8192 is 128 tiles
//    of 64 steps (128 blocks of 16 warps: 97% of 132 SMs, and splitting K would leave the most
//    loaded SM with the same 80 KB), 8192 x 2048 is 512 tiles of 16 steps (512 blocks of 4 warps).
// Lane (g, t) of a warp reads 16 bytes of rows g and g + 8 at byte 16 t of a step: the mma's A
// fragment then holds codes of its own load, and x is staged in the matching B order.
#include <cooperative_groups.h>

#include <algorithm>
#include <type_traits>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

constexpr int kTileRows = 16;
constexpr int kStepWords = 16;                      // 4 lanes x 16 bytes of one row
constexpr int kDepth = 4;                           // steps per warp, loaded at once
constexpr int kMaxWarps = 16;
constexpr int kMaxChunkSteps = kMaxWarps * kDepth;  // 64 KB of codes per 16-row block
constexpr int kMaxChunks = 8;                       // the portable cluster size
constexpr int kPassRows = 8;                        // x rows per pass: the mma's n
constexpr size_t kXBudget = 32 << 10;               // staged x per block
constexpr size_t kParamBudget = 16 << 10;           // staged scales + zeros per block
constexpr int kPartialFloats = kTileRows * kPassRows;

// How one launch splits the work (host-made, passed by value).
struct GemvPlan {
  int chunks;       // K chunks per tile = the cluster size (grid.x); 0: the GEMV does not take it
  int chunk_steps;  // K steps per chunk (the last one may have fewer)
  int warps;        // per block: ceil(chunk_steps / kDepth)
  int pass_rows;    // x rows per pass
  int param_pitch;  // staged parameters per tile row (whole 32-bit words)
};

// The P elements of x that meet one code word (2P bytes).
template <int kFmt>
struct alignas(codes_per_word(kFmt) >= 8 ? 16 : 8) XWord {
  uint32_t v[codes_per_word(kFmt) / 2];
};

// Scales/zeros as stored (bf16/f16/f32 bits, e4m3 bytes for NvFp4).
template <class P>
using ParamBits = std::conditional_t<sizeof(P) == 1, uint8_t, std::conditional_t<sizeof(P) == 2, uint16_t, uint32_t>>;

// Dynamic shared memory: the warps' partial sums [warps][16 rows][8 x rows] f32, staged x
// [pass_rows][chunk words] (2P bytes a word), then scales and zeros [16][param_pitch].
size_t x_bytes(const GemvPlan& p, int codes_per_word) {
  return size_t(p.pass_rows) * p.chunk_steps * kStepWords * 2 * codes_per_word;
}
size_t param_bytes(const GemvPlan& p, size_t param_size, bool zeros) {
  return size_t(kTileRows) * p.param_pitch * param_size * (zeros ? 2 : 1);
}
size_t smem_bytes(const GemvPlan& p, int codes_per_word, size_t param_size, bool zeros) {
  return size_t(p.warps) * kPartialFloats * sizeof(float) + x_bytes(p, codes_per_word) +
         param_bytes(p, param_size, zeros);
}

// Copies the tile's rows r0 .. r0 + 15 (clamped to last_row, as the code loads are) of `count`
// parameters from column c0 of the row-major [rows, stride] arrays `scales` and, when not null,
// `zeros` into dst [16 or 32][pitch] (the zeros' rows after the scales'). Whole 32-bit words go
// by cp.async (the usual case): no registers held, nothing waits before griddepcontrol.wait;
// other layouts (one 2-byte parameter per row, say) go element by element. Each thread walks
// its (row, column) positions by carries: no division per element.
template <class E>
__device__ __forceinline__ void stage_params(E* dst, int pitch, const void* scales, const void* zeros, int64_t stride,
                                             int64_t c0, int count, int64_t r0, int64_t last_row) {
  constexpr int kPer = 4 / sizeof(E);
  const bool words = (c0 | count | stride | pitch) % kPer == 0 && reinterpret_cast<uintptr_t>(scales) % 4 == 0 &&
                     reinterpret_cast<uintptr_t>(zeros) % 4 == 0;
  const int unit = words ? kPer : 1, units = count / unit, rows = zeros ? 2 * kTileRows : kTileRows;
  const int row_step = blockDim.x / units, col_step = blockDim.x % units;
  for (int r = threadIdx.x / units, c = threadIdx.x % units; r < rows; r += row_step, c += col_step) {
    if (c >= units) {
      c -= units;
      if (++r == rows) break;
    }
    const bool scale = r < kTileRows;
    const int64_t row = min(r0 + (scale ? r : r - kTileRows), last_row);
    const E* src = static_cast<const E*>(scale ? scales : zeros) + row * stride + c0 + c * unit;
    if (words) cp_async<4>(smem_addr(dst + r * pitch + c * unit), src);
    else dst[r * pitch + c] = *src;
  }
}

// Copies m rows of x (`words` code words' worth each, rows `stride` words apart) into shared
// memory [m][pitch] in the mma's B order: each word's elements as the decoder pairs them,
// (x_j, x_{j+P/2}), two pairs per B register pair, so a step reads its operands with no permutes.
// Two 16-byte loads per thread before their stores (a 2048 x 8192 tile's x in one L2 round trip;
// one 32-byte int2 word: more would spill the code registers).
template <int kFmt>
__device__ __forceinline__ void stage_x(XWord<kFmt>* xs, int pitch, const XWord<kFmt>* x, int64_t stride, int m,
                                        int words) {
  constexpr int kQuarter = codes_per_word(kFmt) / 4, kBatch = sizeof(XWord<kFmt>) > 16 ? 1 : 2;
  const int n = m * words, step = blockDim.x;
  for (int i = threadIdx.x; i < n; i += kBatch * step) {
    XWord<kFmt> in[kBatch] = {};
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int k = i + u * step, r = k / words;
      if (k < n) in[u] = x[r * stride + k - r * words];
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int k = i + u * step, r = k / words;
      XWord<kFmt> out;
#pragma unroll
      for (int j = 0; j < kQuarter; ++j) {
        out.v[2 * j] = __byte_perm(in[u].v[j], in[u].v[j + kQuarter], 0x5410);
        out.v[2 * j + 1] = __byte_perm(in[u].v[j], in[u].v[j + kQuarter], 0x7632);
      }
      if (k < n) xs[r * pitch + k - r * words] = out;
    }
  }
}

// A lane's view of the staged parameters: its row g's scales; row g + 8 is 8 pitches on, the
// zeros 16 pitches on (one shared pointer and a uniform pitch: few registers in the loop).
template <class Bits>
struct LaneParams {
  const Bits* row;
  int pitch;
  bool has_zeros;
};

// Decoder of group i (staged index) of row g (b = false) or g + 8 (b = true).
template <int kFmt, class T, class P, class Bits>
__device__ __forceinline__ WordDecoder<kFmt, T> decoder(const PackedWeight& w, const LaneParams<Bits>& lp, bool b,
                                                        int i) {
  const Bits* scale = lp.row + (b ? 8 * lp.pitch : 0) + i;
  return WordDecoder<kFmt, T>(
      unpack_group<kFmt, P>(w, RawGroup{*scale, lp.has_zeros ? scale[kTileRows * lp.pitch] : 0u}));
}

// One step of a lane: words 0..3 of its rows a and b (new decoders where a word starts a group:
// the 4 words start 4k words into the row, so only word boundaries can), each word's x from
// shared memory (zeros for an x row past M: has_x false); words 0-1 feed acc[0], 2-3 acc[1] (two
// mma chains).
template <int kFmt, class T, class P, class Bits>
__device__ __forceinline__ void consume_step(const uint4 (&code)[2], const PackedWeight& w, const LaneParams<Bits>& lp,
                                             int group, const XWord<kFmt>* x, bool has_x, float (*acc)[4]) {
  constexpr int kP = codes_per_word(kFmt);
  const uint32_t* ca = reinterpret_cast<const uint32_t*>(&code[0]);
  const uint32_t* cb = reinterpret_cast<const uint32_t*>(&code[1]);
  auto da = decoder<kFmt, T, P>(w, lp, false, group);
  auto db = decoder<kFmt, T, P>(w, lp, true, group);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int step_group = (i * kP) >> w.group_shift;  // uniform
    if (i > 0 && step_group != ((i - 1) * kP) >> w.group_shift) {
      da = decoder<kFmt, T, P>(w, lp, false, group + step_group);
      db = decoder<kFmt, T, P>(w, lp, true, group + step_group);
    }
    XWord<kFmt> xv{};
    if (has_x) xv = x[i];
#pragma unroll
    for (int j = 0; j < kP / 2; j += 2) {
      const uint32_t a[4] = {as_u32(da.pair(ca[i], j)), as_u32(db.pair(cb[i], j)), as_u32(da.pair(ca[i], j + 1)),
                             as_u32(db.pair(cb[i], j + 1))};
      mma_16816<T>(acc[i / 2], a, xv.v + j);
    }
  }
}

// Grid: (chunk, pass, tile); a cluster is the chunks of one (pass, tile).
template <int kFmt, class T, class P>
__global__ void __launch_bounds__(kMaxWarps * 32, 2)
    quant_gemv_kernel(PackedWeight w, GemvPlan plan, const T* x, const T* bias, T* out, int m_total) {
  using Bits = ParamBits<P>;
  constexpr int kP = codes_per_word(kFmt);
  extern __shared__ uint4 smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n = w.rows, r0 = int64_t(blockIdx.z) * kTileRows;
  const int chunk_words = plan.chunk_steps * kStepWords;
  const int64_t word0 = int64_t(blockIdx.x) * chunk_words;
  const int steps = static_cast<int>(
      min(int64_t(plan.chunk_steps), w.row_words / kStepWords - int64_t(blockIdx.x) * plan.chunk_steps));
  float* partial = reinterpret_cast<float*>(smem);
  auto* xs = reinterpret_cast<XWord<kFmt>*>(partial + plan.warps * kPartialFloats);
  Bits* scales = reinterpret_cast<Bits*>(xs + plan.pass_rows * chunk_words);  // zeros follow

  // Everything that does not depend on the previous kernel first: the next kernel may start
  // (and issue its own weight loads) as soon as it fits beside this one.
  release_next_grid();
  // The parameters of the groups this chunk touches (asynchronous copies: first, as the first
  // step needs them as soon as its codes).
  const int64_t g0 = (word0 * kP) >> w.group_shift;
  const int groups = static_cast<int>((((word0 + steps * kStepWords) * kP - 1) >> w.group_shift) + 1 - g0);
  stage_params(scales, plan.param_pitch, w.scales, w.zeros, w.groups, g0, groups, r0, n - 1);
  cp_async_commit();
  // All of this warp's code loads at once (rows past the end read the last row, never stored).
  const int64_t row_a = min(r0 + g, n - 1), row_b = min(r0 + g + 8, n - 1);
  const uint4* ca = reinterpret_cast<const uint4*>(w.codes + row_a * w.row_words + word0) + t;
  const uint4* cb = reinterpret_cast<const uint4*>(w.codes + row_b * w.row_words + word0) + t;
  uint4 code[kDepth][2];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    const int s = warp + d * plan.warps;
    if (s < steps) {
      code[d][0] = ca[s * 4];  // plain loads: the compiler may sink __ldg's past the wait below
      code[d][1] = cb[s * 4];
    }
  }

  wait_previous_grid();
  const int pass = blockIdx.y, m = min(plan.pass_rows, m_total - pass * plan.pass_rows);
  stage_x<kFmt>(xs, chunk_words,
                reinterpret_cast<const XWord<kFmt>*>(x + int64_t(pass) * plan.pass_rows * w.cols) + word0,
                w.row_words, m, steps * kStepWords);
  cp_async_wait<0>();
  __syncthreads();

  const LaneParams<Bits> lp{scales + g * plan.param_pitch, plan.param_pitch, w.zeros != nullptr};
  const XWord<kFmt>* x_row = xs + min(g, m - 1) * chunk_words;
  // Element e of the chunk lies in staged group (e + offset) >> group_shift: offset is where the
  // chunk starts inside group g0 (32 bits: a row has < 2^31 elements).
  const uint32_t offset = static_cast<uint32_t>(word0 * kP - (g0 << w.group_shift));
  float acc[2][4] = {};
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
    const int s = warp + d * plan.warps;
    if (s < steps) {
      const int word = s * kStepWords + 4 * t;  // within the chunk
      const int group = static_cast<int>((offset + uint32_t(word * kP)) >> w.group_shift);
      consume_step<kFmt, T, P>(code[d], w, lp, group, x_row + word, g < m, acc);
    }
  }

  // Accumulator fragment: [0..1] = row g, x rows 2t, 2t+1; [2..3] = row g + 8. The warps' sums
  // meet in shared memory, then (several chunks) the chunks' sums in the cluster's rank 0.
  float* mine = partial + warp * kPartialFloats;
  mine[g * kPassRows + 2 * t] = acc[0][0] + acc[1][0];
  mine[g * kPassRows + 2 * t + 1] = acc[0][1] + acc[1][1];
  mine[(g + 8) * kPassRows + 2 * t] = acc[0][2] + acc[1][2];
  mine[(g + 8) * kPassRows + 2 * t + 1] = acc[0][3] + acc[1][3];
  __syncthreads();
  out += int64_t(pass) * plan.pass_rows * n;
  auto store = [&](int i, float sum) {
    const int row = i / kPassRows, col = i % kPassRows;
    if (col < m && r0 + row < n) {
      if (bias) sum += static_cast<float>(bias[r0 + row]);
      out[col * n + r0 + row] = static_cast<T>(sum);
    }
  };
  for (int i = threadIdx.x; i < kPartialFloats; i += blockDim.x) {
    float sum = 0.f;
    for (int k = 0; k < plan.warps; ++k) sum += partial[k * kPartialFloats + i];
    if (plan.chunks == 1) store(i, sum);
    else partial[i] = sum;  // element i is read by this thread only
  }
#if __CUDA_ARCH__ >= 900
  if (plan.chunks > 1) {
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    cluster.sync();
    if (cluster.block_rank() == 0) {
      for (int i = threadIdx.x; i < kPartialFloats; i += blockDim.x) {
        float sum = 0.f;
        for (int r = 0; r < plan.chunks; ++r) sum += cluster.map_shared_rank(partial, r)[i];
        store(i, sum);
      }
    }
    cluster.sync();  // the other blocks' shared memory stays until rank 0 has read it
  }
#endif
}

bool clusters_supported() {
  static const bool supported = [] {
    int device = 0, cluster = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&cluster, cudaDevAttrClusterLaunch, device);
    return cluster != 0;
  }();
  return supported;
}

// The opt-in shared-memory limit of a block.
size_t smem_limit() {
  static const size_t limit = [] {
    int device = 0, optin = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    return static_cast<size_t>(optin);
  }();
  return limit;
}

size_t param_size(const PackedWeight& w) { return dtype_size(w.param_dtype); }

// Chunk size: as long as allowed (<= 64 steps, staged x and parameters within budget), so that
// the bench's shapes take one chunk (no cluster). With num_sms > 0 and a grid that would leave
// more than half the SMs idle (few rows), shorter, down to one warp's kDepth steps and at most
// kMaxChunks chunks, so more SMs share the latency. Several chunks need clusters (sm_90).
GemvPlan plan_gemv(const PackedWeight& w, int64_t m, int num_sms) {
  const int P = static_cast<int>(w.cols / w.row_words);
  const int64_t steps = w.row_words / kStepWords, tiles = (w.rows + kTileRows - 1) / kTileRows;
  const int pass_rows = static_cast<int>(std::min<int64_t>(kPassRows, m));
  const int64_t blocks = tiles * ((m + pass_rows - 1) / pass_rows);
  const int64_t group = int64_t(1) << w.group_shift;
  const int per_word = static_cast<int>(std::max<size_t>(1, 4 / param_size(w)));
  const int max_chunks = clusters_supported() ? kMaxChunks : 1;
  // The most groups a chunk of s steps touches (one more than its span when chunks start mid-group).
  auto pitch = [&](int64_t s) {
    const int64_t span = s * kStepWords * P;
    const int64_t most = std::min(w.groups, (span + group - 1) / group + (span % group ? 1 : 0));
    return static_cast<int>((most + per_word - 1) / per_word * per_word);
  };
  // The plan with the longest even chunks of at most `longest` steps that fit the budgets.
  auto make = [&](int64_t longest) {
    int64_t s = std::max<int64_t>(1, std::min(steps, longest));
    auto fits = [&](int64_t s) {
      const GemvPlan p{1, static_cast<int>(s), 1, pass_rows, pitch(s)};
      return x_bytes(p, P) <= kXBudget && param_bytes(p, param_size(w), w.zeros) <= kParamBudget;
    };
    while (s > 1 && !fits(s)) --s;
    const int64_t chunks = (steps + s - 1) / s;
    s = (steps + chunks - 1) / chunks;
    GemvPlan plan{0, static_cast<int>(s), static_cast<int>((s + kDepth - 1) / kDepth), pass_rows, pitch(s)};
    const bool ok = steps > 0 && chunks <= max_chunks && tiles <= 65535 &&
                    smem_bytes(plan, P, param_size(w), w.zeros) <= smem_limit();
    plan.chunks = ok ? static_cast<int>(chunks) : 0;
    return plan;
  };
  const GemvPlan plan = make(kMaxChunkSteps);
  if (num_sms > 0 && max_chunks > 1 && 2 * blocks <= num_sms) {
    const int64_t want = std::min<int64_t>(kMaxChunks, (num_sms + blocks - 1) / blocks);
    const GemvPlan split = make(std::max<int64_t>(kDepth, (steps + want - 1) / want));
    if (split.chunks > 0) return split;
  }
  return plan;
}

template <int kFmt, class T, class P>
cudaError_t launch(const Context& c, const PackedWeight& w, const GemvPlan& plan, const T* x, const T* bias, T* out,
                   int m) {
  static const bool opted_in = [] {
    return cudaFuncSetAttribute(quant_gemv_kernel<kFmt, T, P>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(smem_limit())) == cudaSuccess;
  }();
  (void)opted_in;  // a failure surfaces as the launch error below
  const dim3 grid(static_cast<unsigned>(plan.chunks), static_cast<unsigned>((m + plan.pass_rows - 1) / plan.pass_rows),
                  static_cast<unsigned>((w.rows + kTileRows - 1) / kTileRows));
  const size_t smem = smem_bytes(plan, codes_per_word(kFmt), param_size(w), w.zeros);
  return launch_overlapped_clusters(static_cast<unsigned>(plan.chunks), quant_gemv_kernel<kFmt, T, P>, grid,
                                    dim3(plan.warps * 32), smem, c.stream, w, plan, x, bias, out, m);
}

}  // namespace

bool quant_gemv_supported(const PackedWeight& w, const TensorRef& x, int64_t m) {
  return (x.dtype == DType::BF16 || x.dtype == DType::F16) && m >= 1 && m <= kMaxGemvRows &&
         w.row_words % kStepWords == 0 && reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x.data) % 16 == 0 && plan_gemv(w, m, 0).chunks > 0;
}

Status quant_gemv(const Context& c, const QuantWeightParams& p, const PackedWeight& w, const void* x, DType dtype,
                  const void* bias, void* out, int64_t m) {
  const GemvPlan plan = plan_gemv(w, m, c.num_sms);
  cudaError_t status = cudaSuccess;
  with_packed_types(p, dtype, w.param_dtype, [&](auto fmt, auto type, auto param) {
    using T = decltype(type);
    constexpr int kFmt = decltype(fmt)::value;
    status = launch<kFmt, T, decltype(param)>(c, w, plan, static_cast<const T*>(x), static_cast<const T*>(bias),
                                              static_cast<T*>(out), static_cast<int>(m));
  });
  return cuda_status(status, "quant_gemv kernel");
}

}  // namespace etgpu::cuda
