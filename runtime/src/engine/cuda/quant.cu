// Quantized linear and embedding on the CUDA engine (layout: ops.h).
//
// quant_linear: bf16/f16 x with at most kMaxGemvRows rows takes the tensor-core GEMV
// (quant_gemv.cu), which reads the packed weights once per 8 rows. More rows (prefill), f32 x and
// the layouts the GEMV does not tile dequantize the weight into the engine's fixed quant scratch,
// a chunk of rows at a time, and multiply with cuBLASLt into the matching column block of out
// (ldc = N): no allocation in run, whatever the weight's size. The dequantize pass runs near the
// copy rate, so this costs 1.03-1.24x a bf16 cuBLASLt GEMM at 512-2048 rows on the H200
// (bench/NOTES.md, session 17). A tiled GEMM that decoded weight tiles straight into mma.sync
// operands (reading them once) measured 2-4x slower than this path, and was removed.
// TorchAO 8da activations are quantized-dequantized per row into the scratch first (in chunks of
// rows when x exceeds it).
// quant_embedding reuses the row-dequantize kernel with a gather index.
#include <algorithm>

#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/quant.cuh"
#include "engine/cuda/quant_internal.h"

namespace etgpu::cuda {
namespace {

// A word's kN decoded values stored at dst: as 16-byte (or 8-byte) units when `vector` (dst
// aligned to them), else one by one. Scalar 2-byte stores spread over a warp made the dequantize
// pass ~5x slower than its bytes (bench/NOTES.md 2026-11-30, session 17).
template <class T, int kN>
__device__ __forceinline__ void store_values(T* dst, const T (&v)[kN], bool vector) {
  constexpr int kBytes = kN * static_cast<int>(sizeof(T));
  if constexpr (kBytes % 16 == 0) {
    if (vector) {
#pragma unroll
      for (int c = 0; c < kBytes / 16; ++c) reinterpret_cast<uint4*>(dst)[c] = reinterpret_cast<const uint4*>(v)[c];
      return;
    }
  } else if constexpr (kBytes % 8 == 0) {
    if (vector) {
      *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(v);
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < kN; ++e) dst[e] = v[e];
}

// Dequantizes rows of W into out[r, :] (row-major, `cols` per row), r < out_rows. Source row:
// index[r] when an index is given (embedding; negatives wrap once as in index.cu, and a row
// still out of range is zeroed and flagged), else row0 + r. A thread decodes code word
// blockIdx.x * blockDim.x + threadIdx.x of rows blockIdx.y, + gridDim.y, ... (no division per
// word; a row's source is resolved once per row).
template <int kFmt, class T>
__global__ void dequant_rows_kernel(PackedWeight w, int64_t row0, const void* index, DType index_dtype, T* out,
                                    int64_t out_rows, bool vector_stores, int* error_flag) {
  constexpr int kP = codes_per_word(kFmt);
  const int64_t word = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (word >= w.row_words) return;
  for (int64_t r = blockIdx.y; r < out_rows; r += gridDim.y) {
    int64_t src = row0 + r;
    bool valid = true;
    if (index) {
      src = load_index(index, index_dtype, r);
      if (src < 0) src += w.rows;
      valid = src >= 0 && src < w.rows;
      if (!valid && word == 0) atomicCAS(error_flag, kNoError, kIndexOutOfRange);
    }
    alignas(16) T values[kP];
    if (valid) {
      const uint32_t code = w.codes[src * w.row_words + word];
      const WordDecoder<kFmt, T> decoder(load_group<kFmt>(w, src, (word * kP) >> w.group_shift));
#pragma unroll
      for (int j = 0; j < kP / 2; ++j) {
        const auto pair = decoder.pair(code, j);
        values[j] = pair.x;
        values[j + kP / 2] = pair.y;
      }
    } else {
#pragma unroll
      for (int e = 0; e < kP; ++e) values[e] = T(0.f);
    }
    store_values(out + r * w.cols + word * kP, values, vector_stores);
  }
}

template <class T>
__device__ __forceinline__ float to_dtype(float v) {
  return static_cast<float>(static_cast<T>(v));
}

// TorchAO's per-token asymmetric int8 quantize-dequantize (choose_qparams_affine with
// MappingType.ASYMMETRIC, quantize_affine, dequantize_affine), one block per row. Every
// intermediate is rounded to x's dtype, as TorchAO computes it in that dtype; eps is the
// dtype's smallest normal.
template <class T>
__global__ void act_quant_kernel(const T* x, T* out, int64_t cols, float eps) {
  __shared__ float scratch[32];
  const T* row = x + blockIdx.x * cols;
  T* dst = out + blockIdx.x * cols;
  float lo = 0.f, hi = 0.f;  // min(min(x), 0), max(max(x), 0)
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const float v = static_cast<float>(row[k]);
    lo = fminf(lo, v);
    hi = fmaxf(hi, v);
  }
  lo = -block_reduce(-lo, MaxOp{}, scratch);
  hi = block_reduce(hi, MaxOp{}, scratch);
  const float scale = fmaxf(to_dtype<T>(to_dtype<T>(hi - lo) / 255.f), eps);
  const float zp = fminf(fmaxf(-128.f - rintf(to_dtype<T>(lo / scale)), -128.f), 127.f);
  const float inv = to_dtype<T>(1.f / scale);
  for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) {
    const float q = fminf(fmaxf(rintf(to_dtype<T>(static_cast<float>(row[k]) * inv)) + zp, -128.f), 127.f);
    dst[k] = static_cast<T>((q - zp) * scale);
  }
}

float smallest_normal(DType d) { return d == DType::F16 ? 6.103515625e-05f : 1.17549435e-38f; }

Status act_quant(const Context& c, const void* x, DType dtype, void* out, int64_t rows, int64_t cols) {
  with_float_type(dtype, [&](auto type) {
    using T = decltype(type);
    act_quant_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, c.stream>>>(
        static_cast<const T*>(x), static_cast<T*>(out), cols, smallest_normal(dtype));
  });
  ETGPU_CUDA_LAUNCH_CHECK("quant act_quant kernel");
  return Status::ok();
}

Status dequant_rows(const Context& c, const QuantWeightParams& p, const PackedWeight& w, int64_t row0,
                    const TensorRef* index, DType dtype, void* out, int64_t out_rows) {
  const dim3 grid(static_cast<unsigned>((w.row_words + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(out_rows, 1), 65535)));
  with_format(p, [&](auto fmt) {
    constexpr int kFmt = decltype(fmt)::value;
    with_float_type(dtype, [&](auto type) {
      using T = decltype(type);
      // A word's values as 16-byte units (8 for int8 with 2-byte T) when every row start allows.
      const size_t unit = std::min<size_t>(16, codes_per_word(kFmt) * sizeof(T));
      const bool vector = reinterpret_cast<uintptr_t>(out) % unit == 0 && (w.cols * sizeof(T)) % unit == 0;
      dequant_rows_kernel<kFmt, T><<<grid, kThreads, 0, c.stream>>>(
          w, row0, index ? index->data : nullptr, index ? index->dtype : DType::I64, static_cast<T*>(out),
          out_rows, vector, c.error_flag);
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("quant dequant_rows kernel");
  return Status::ok();
}

// Prefill (and every case the GEMV does not take): chunks of dequantized weight rows through
// cuBLASLt. The scratch holds act-quantized x in its first half when needed, weight rows in the
// rest; the chunk sizes come from those halves.
Status quant_gemm(const Context& c, const QuantLinearParams& p, const PackedWeight& w, const TensorRef& x,
                  const TensorRef* bias, const TensorRef& out, int64_t m) {
  const int64_t k = w.cols, n = w.rows;
  const size_t row_bytes = static_cast<size_t>(k) * dtype_size(x.dtype);
  const bool act = p.act != ActQuant::None;
  auto* scratch = static_cast<uint8_t*>(c.quant_scratch);
  const size_t act_bytes = act ? c.quant_scratch_bytes / 2 : 0;
  const int64_t m_chunk = act ? std::min<int64_t>(m, act_bytes / row_bytes) : m;
  int64_t n_chunk = std::min<int64_t>(n, (c.quant_scratch_bytes - act_bytes) / row_bytes);
  if (n_chunk > 16) n_chunk -= n_chunk % 16;  // keeps column blocks of out 32-byte aligned
  ETGPU_CHECK(m_chunk > 0 && n_chunk > 0, "quant_linear: a row of ", k, " elements exceeds the ",
              c.quant_scratch_bytes, "-byte quant scratch");
  if (bias) ETGPU_RETURN_IF_ERROR(broadcast_copy(c, *bias, out));
  const size_t element = dtype_size(x.dtype);
  for (int64_t m0 = 0; m0 < m; m0 += m_chunk) {
    const int64_t rows = std::min(m_chunk, m - m0);
    const void* a = static_cast<const uint8_t*>(x.data) + m0 * row_bytes;
    if (act) {
      ETGPU_RETURN_IF_ERROR(act_quant(c, a, x.dtype, scratch, rows, k));
      a = scratch;
    }
    for (int64_t n0 = 0; n0 < n; n0 += n_chunk) {
      const int64_t cols = std::min(n_chunk, n - n0);
      ETGPU_RETURN_IF_ERROR(dequant_rows(c, p.w, w, n0, nullptr, x.dtype, scratch + act_bytes, cols));
      GemmProblem g{x.dtype, true, rows, cols, k, 1, 0, 0, 0, bias != nullptr, n};
      auto* dst = static_cast<uint8_t*>(out.data) + (m0 * n + n0) * element;
      ETGPU_RETURN_IF_ERROR(c.blas->gemm(g, a, scratch + act_bytes, dst, c.stream));
    }
  }
  return Status::ok();
}

Status unsupported_layout(const char* op, const QuantWeightParams& p) {
  return err(op, ": the cuda engine needs whole 32-bit code words per row and groups that are a "
             "whole row or a power of two >= 16 (bits ", p.bits, ", group ", p.group, ")");
}

// Which path runs: quant_linear's choice, or one forced (the benchmark entry points).
enum class LinearPath { Auto, Dequant, Gemv };

Status run_quant_linear(const Context& c, const Node& n, const QuantLinearParams& p, LinearPath path) {
  const TensorRef &x = n.in[0], &out = n.out;
  if (out.numel() == 0) return Status::ok();
  const int64_t k = x.size(-1), m = x.numel() / k;
  PackedWeight w;
  if (k == 0 || !make_packed_weight(n, 1, p.w, k, &w)) return unsupported_layout("quant_linear", p.w);
  const TensorRef* bias = quant_linear_bias(n, p);
  if (path == LinearPath::Dequant) return quant_gemm(c, p, w, x, bias, out, m);
  const bool act = p.act != ActQuant::None;
  const bool act_fits = !act || x.nbytes() <= c.quant_scratch_bytes;
  const bool gemv_fits = quant_gemv_supported(w, x, m) && act_fits;
  if (path == LinearPath::Gemv && !gemv_fits) return err("quant_linear: the GEMV does not take this layout");
  if (path == LinearPath::Auto && (m > kMaxGemvRows || !gemv_fits)) return quant_gemm(c, p, w, x, bias, out, m);
  const void* a = x.data;
  if (act) {
    ETGPU_RETURN_IF_ERROR(act_quant(c, x.data, x.dtype, c.quant_scratch, m, k));
    a = c.quant_scratch;
  }
  return quant_gemv(c, p.w, w, a, x.dtype, bias ? bias->data : nullptr, out.data, m);
}

}  // namespace

Status quant_linear(const Context& c, const Node& n, const QuantLinearParams& p) {
  return run_quant_linear(c, n, p, LinearPath::Auto);
}

Status quant_linear_dequant(const Context& c, const Node& n, const QuantLinearParams& p) {
  return run_quant_linear(c, n, p, LinearPath::Dequant);
}

Status quant_linear_gemv(const Context& c, const Node& n, const QuantLinearParams& p) {
  return run_quant_linear(c, n, p, LinearPath::Gemv);
}

namespace {

bool same_weight_kind(const QuantWeightParams& a, const QuantWeightParams& b) {
  return a.scheme == b.scheme && a.bits == b.bits && a.group == b.group && a.has_zeros == b.has_zeros &&
         a.zero_is_float == b.zero_is_float;
}

bool same_tensor(const TensorRef& a, const TensorRef& b) {
  return a.data == b.data && a.dtype == b.dtype && same_shape(a, b);
}

// A gated MLP's Glu right after its gate and up siblings (nodes[0], nodes[1]), over exactly their
// outputs, that the GEMV's epilogue can compute: the launch writes its output while other blocks
// still read x and the two products, so it must share no byte with them (memory_plan.py keeps x
// live through such a Glu so that lowering leaves them apart).
const GluParams* glu_after_pair(const Node* nodes, size_t count, const PackedWeight& gate, const PackedWeight& up) {
  if (count < 3) return nullptr;
  const auto* p = std::get_if<GluParams>(&nodes[2].params);
  const Node& glu = nodes[2];
  const bool fits = p && same_tensor(glu.in[0], nodes[0].out) && same_tensor(glu.in[1], nodes[1].out) &&
                    same_shape(glu.out, nodes[0].out) && glu.out.dtype == nodes[0].out.dtype &&
                    gate.rows == up.rows && gate.tensor_scale == up.tensor_scale &&
                    !bytes_overlap(glu.out, nodes[0].in[0]) && !bytes_overlap(glu.out, nodes[0].out) &&
                    !bytes_overlap(glu.out, nodes[1].out);
  return fits ? p : nullptr;
}

}  // namespace

Status quant_linear_group(const Context& c, const Node* nodes, size_t count, size_t* ran) {
  *ran = 0;
  const auto* first = std::get_if<QuantLinearParams>(&nodes[0].params);
  if (count < 2 || !first || first->act != ActQuant::None) return Status::ok();
  const TensorRef& x = nodes[0].in[0];
  const int64_t k = x.rank > 0 ? x.size(-1) : 0;
  if (k == 0 || x.numel() == 0) return Status::ok();
  const int64_t m = x.numel() / k;
  if (m > kMaxGemvRows) return Status::ok();
  PackedWeight weights[kMaxGemvSiblings];
  GemvSibling siblings[kMaxGemvSiblings];
  int taken = 0;
  int64_t tiles = 0;
  for (size_t i = 0; i < count && taken < kMaxGemvSiblings; ++i) {
    const Node& node = nodes[i];
    const auto* p = std::get_if<QuantLinearParams>(&node.params);
    PackedWeight& w = weights[taken];
    if (!p || p->act != ActQuant::None || !same_weight_kind(p->w, first->w) || !same_tensor(node.in[0], x) ||
        node.out.numel() == 0 || node.out.dtype != x.dtype || !make_packed_weight(node, 1, p->w, k, &w) ||
        !quant_gemv_supported(w, x, m) || w.param_dtype != weights[0].param_dtype) {
      break;
    }
    // One launch runs the siblings in no order: each must be independent of every earlier one.
    bool free_order = true;
    for (size_t j = 0; j < i && free_order; ++j) free_order = independent(nodes[j], node);
    tiles += gemv_tiles(w.rows);
    if (!free_order || tiles > kMaxGemvTiles) break;
    const TensorRef* bias = quant_linear_bias(node, *p);
    siblings[taken++] = GemvSibling{&w, bias ? bias->data : nullptr, node.out.data};
  }
  if (taken < 2) return Status::ok();
  if (taken == 2) {
    if (const GluParams* glu = glu_after_pair(nodes, count, weights[0], weights[1])) {
      *ran = 3;
      const GemvGlu epilogue{nodes[2].out.data, glu->act};
      return quant_gemv_siblings(c, first->w, siblings, taken, x.data, x.dtype, m, &epilogue);
    }
  }
  *ran = static_cast<size_t>(taken);  // before the launch, so that a failure names the whole group
  return quant_gemv_siblings(c, first->w, siblings, taken, x.data, x.dtype, m);
}

Status quant_embedding(const Context& c, const Node& n, const QuantEmbeddingParams& p) {
  const TensorRef &index = n.in[0], &out = n.out;
  if (out.numel() == 0) return Status::ok();
  PackedWeight w;
  if (!make_packed_weight(n, 1, p.w, out.size(-1), &w)) return unsupported_layout("quant_embedding", p.w);
  return dequant_rows(c, p.w, w, 0, &index, out.dtype, out.data, index.numel());
}

}  // namespace etgpu::cuda
