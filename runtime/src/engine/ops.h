// The instruction set an engine implements: one parameter struct per op family. The numeric
// values of the enums equal those of schema/etgpu.fbs (the executor checks this at compile time).
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "engine/tensor.h"

namespace etgpu {

enum class UnaryOp : uint8_t {
  Neg = 0, Abs, Sqrt, Rsqrt, Exp, Log, Relu, GeluErf, GeluTanh, Silu, Sigmoid, Tanh,
  LogicalNot, Sin, Cos, Reciprocal, Erf, Floor, Ceil, Round, Clamp, PowScalar, Square,
  Log1p, Expm1, Sign, Trunc, BitwiseNot, IsNan, Softplus, Elu, LeakyRelu, HardSigmoid, HardSwish,
  kCount
};

enum class BinaryOp : uint8_t {
  Add = 0, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge,
  LogicalAnd, LogicalOr, FloorDiv, Remainder, BitwiseAnd, BitwiseOr, BitwiseXor, Atan2, TruncDiv,
  kCount
};

enum class ReduceOp : uint8_t { Sum = 0, Mean, Amax, Amin, Prod, Argmax, Argmin, Any, All, kCount };

// Operand order in Node::in is given per struct.
struct UnaryParams { UnaryOp op; double alpha; double beta; };                 // in: x
struct BinaryParams { BinaryOp op; bool has_b; double scalar; bool scalar_first; double alpha; };  // in: a [, b]
struct WhereParams {};                                                        // in: cond, a, b
struct CastParams {};                                                         // in: x
struct FillParams { double value; };                                          // in: -
struct ArangeParams { double start; double step; };                           // in: -
struct MatMulParams { bool trans_b; bool has_bias; };                         // in: a, b [, bias]
struct ReduceParams { ReduceOp op; std::vector<int> dims; bool keepdim; };   // in: x
struct SoftmaxParams { int dim; bool log; };                                  // in: x
struct LayerNormParams { bool has_weight; bool has_bias; double eps; int normalized_ndim; };  // in: x [, w] [, b]
struct RmsNormParams { bool has_weight; double eps; bool unit_offset; bool round_normalized; };  // in: x [, w]
struct PermuteParams { std::vector<int> perm; };                              // in: x
struct ExpandParams {};                                                       // in: x
struct SliceParams { int dim; int64_t start; int64_t step; };                 // in: x (out gives length)
struct SelectParams { int dim; int64_t index; };                              // in: x
struct CatParams { int dim; };                                                // in: inputs...
struct IndexSelectParams { int dim; };                                        // in: x, index
struct GatherParams { int dim; };                                             // in: x, index
// out_seq_major: out is [B, L, H, Ev], each output row stored at its seq-major place.
struct SdpaParams { bool has_mask; double scale; bool causal; bool out_seq_major = false; };  // in: q, k, v [, mask]
struct CopyIntoParams { int dim; int64_t start; };                            // in: x; out: dst (written in place)
// x_seq_major: x is [B, L, H, D], read as [B, H, L, D] (dim 2 of a rank-4 dst).
struct IndexCopyParams { int dim; bool x_seq_major = false; };                // in: index, x; out: dst (in place)

// Packed quantized weights (docs/quantization.md is the full contract). A weight is a [N, K]
// matrix (N output features or embedding rows, K the reduced / embedding dim).
//  Affine: codes U8 [N, K*bits/8], row-major; element k of a row sits in byte (k*bits)/8 at bit
//    offset (k*bits)%8, low bits first. Codes are unsigned u in [0, 2^bits). scales (F32, F16 or
//    BF16, as TorchAO produced them) and zeros (same dtype) are [N, K/group]:
//      w = (u - zero) * scale            (integer zero domain; no zeros tensor: zero = 2^(bits-1))
//      w = (u - 2^(bits-1)) * scale + zero   when zero_is_float (TorchAO's float zero domain)
//  NvFp4: codes U8 [N, K/2] of FP4 e2m1 nibbles (low nibble = even k); scales U8 [N, K/16] of FP8
//    e4m3; w = e2m1(u) * e4m3(scale) * tensor_scale. group = 16, bits = 4, no zeros.
enum class QuantScheme : uint8_t { Affine = 0, NvFp4 };
// Dynamic activation quantization applied to each row of x before the product (TorchAO 8da):
// per-token asymmetric int8 quantize-dequantize, as TorchAO's eager reference computes it.
enum class ActQuant : uint8_t { None = 0, Int8PerTokenAsym };
struct QuantWeightParams {
  QuantScheme scheme; int bits; int64_t group; bool has_zeros; bool zero_is_float; float tensor_scale;
};
// out[..., N] = act_quant(x)[..., K] @ dequant(W)^T [+ bias]; fp32 accumulation, x/out/bias share
// one float dtype.                                          in: x, codes, scales [, zeros] [, bias]
struct QuantLinearParams { QuantWeightParams w; ActQuant act; bool has_bias; };
// out[..., K] = dequant(W)[index[...], :] in out's dtype.   in: index, codes, scales [, zeros]
struct QuantEmbeddingParams { QuantWeightParams w; };

// Fused LLM ops (schema/etgpu.fbs has their exact semantics).
// in: x, cos, sin; out: the rotated x. With cache_dim >= 0 (RoPE fused with the KV-cache write):
// in: x, cos, sin, index; out: the cache, whose rows index[i] along cache_dim receive the rotated
// rows in place (IndexCopy's semantics); extra_out[0], if present: the rotated value too.
// With a norm, x's rows are RMS-normalized first (RmsNorm's math, rounded to x's dtype); its
// weight, if any, is the last input (rope_norm_weight).
struct RopeParams { bool x_seq_major; int cache_dim = -1; std::optional<RmsNormParams> norm = std::nullopt; };
struct GluParams { UnaryOp act; };                                            // in: a, b
// out = rms_norm(sum) with `norm`'s fields, sum = x + residual.  in: x, residual [, w]; out: the
// normed value; extra_out[0]: sum (see Node::extra_out).
struct AddRmsNormParams { RmsNormParams norm; };
// Sibling linears over one concatenated weight (schema/etgpu.fbs SplitLinear).  in: x, w [N, K]
// [, bias [N]]; out, then extra_out: the outputs in order, output i taking the next out_i.size(-1)
// rows of w (split_linear_output / split_linear_segment); with `glu`, extra_out's last entry is
// act(output 0) * output 1 (split_linear_glu).
constexpr int kMaxSplitOutputs = 8;
struct SplitLinearParams { bool has_bias; bool glu = false; UnaryOp act = UnaryOp::Silu; };

using OpParams = std::variant<UnaryParams, BinaryParams, WhereParams, CastParams, FillParams,
                              ArangeParams, MatMulParams, ReduceParams, SoftmaxParams,
                              LayerNormParams, RmsNormParams, PermuteParams, ExpandParams,
                              SliceParams, SelectParams, CatParams, IndexSelectParams,
                              GatherParams, SdpaParams, CopyIntoParams, IndexCopyParams,
                              QuantLinearParams, QuantEmbeddingParams, RopeParams, GluParams,
                              AddRmsNormParams, SplitLinearParams>;

const char* op_name(const OpParams& params);

// One instruction, resolved: concrete shapes and engine pointers.
struct Node {
  OpParams params;
  std::vector<TensorRef> in;
  TensorRef out;
  // Outputs after `out`, for the few ops that write more than one tensor (AddRmsNorm's sum, a
  // Rope's rotated value beside its cache, SplitLinear's later outputs); empty for every other op.
  std::vector<TensorRef> extra_out = {};
};

// A QuantizedLinear node's bias operand (after x, codes, scales and the optional zeros), or null.
inline const TensorRef* quant_linear_bias(const Node& n, const QuantLinearParams& p) {
  return p.has_bias ? &n.in[3 + (p.w.has_zeros ? 1 : 0)] : nullptr;
}

// Whether `later` may run beside `earlier` (in one launch, in either order): it reads nothing
// `earlier` writes and writes nothing `earlier` reads or writes. What an engine checks before it
// runs instructions together (Engine::run_next).
inline bool independent(const Node& earlier, const Node& later) {
  auto writes = [](const Node& n, const TensorRef& t) {
    bool hit = bytes_overlap(n.out, t);
    for (const TensorRef& e : n.extra_out) hit |= bytes_overlap(e, t);
    return hit;
  };
  for (const TensorRef& r : later.in) {
    if (writes(earlier, r)) return false;
  }
  for (const TensorRef& r : earlier.in) {
    if (writes(later, r)) return false;
  }
  if (writes(earlier, later.out)) return false;
  for (const TensorRef& e : later.extra_out) {
    if (writes(earlier, e)) return false;
  }
  return true;
}

// Shape and dtype of a Rope node's rotated value: its out, or with a cache (p.cache_dim >= 0,
// in[3] the index) the cache with index.shape[0] rows along cache_dim; data is then
// extra_out[0]'s, or null when the rotated value is only written into the cache.
inline TensorRef rope_rows(const Node& n, const RopeParams& p) {
  if (p.cache_dim < 0) return n.out;
  TensorRef rows = n.out;
  rows.data = n.extra_out.empty() ? nullptr : n.extra_out[0].data;
  if (p.cache_dim < rows.rank && n.in.size() > 3 && n.in[3].rank >= 1) rows.shape[p.cache_dim] = n.in[3].shape[0];
  return rows;
}

// The weight of a Rope node's norm, or null when it has no norm or an unweighted one.
inline const TensorRef* rope_norm_weight(const Node& n, const RopeParams& p) {
  return p.norm && p.norm->has_weight ? &n.in.back() : nullptr;
}

// An Sdpa node's scores, [B, H, L, S] (q's shape with S keys; no data): what its mask broadcasts
// to, whatever the layout of out.
inline TensorRef sdpa_scores(const Node& n) {
  TensorRef scores = n.in[0];
  scores.data = nullptr;
  if (scores.rank == 4 && n.in[1].rank == 4) scores.shape[3] = n.in[1].shape[2];
  return scores;
}

// Output i of a SplitLinear node, and how many linear outputs it has (its Glu output not counted).
inline const TensorRef& split_linear_output(const Node& n, size_t i) { return i == 0 ? n.out : n.extra_out[i - 1]; }
inline size_t split_linear_outputs(const Node& n, const SplitLinearParams& p) {
  return n.extra_out.size() + 1 - (p.glu ? 1 : 0);
}

// The Glu a SplitLinear with `glu` also computes, as its own node over the two linear outputs.
inline Node split_linear_glu(const Node& n, const SplitLinearParams& p) {
  return Node{GluParams{p.act}, {n.out, n.extra_out[0]}, n.extra_out.back()};
}

// Output i of a SplitLinear as the MatMul that computes it on its own: x @ w[rows]^T [+ bias[rows]],
// the rows starting at `first_row` of the concatenated weight (pointer offsets, no copies).
inline Node split_linear_segment(const Node& n, const SplitLinearParams& p, size_t i, int64_t first_row) {
  const TensorRef& out = split_linear_output(n, i);
  auto rows = [&](TensorRef t, int64_t row_elements) {
    t.data = static_cast<uint8_t*>(t.data) + first_row * row_elements * static_cast<int64_t>(dtype_size(t.dtype));
    t.shape[0] = out.size(-1);
    return t;
  };
  Node segment{MatMulParams{true, p.has_bias}, {n.in[0], rows(n.in[1], n.in[1].size(-1))}, out};
  if (p.has_bias) segment.in.push_back(rows(n.in[2], 1));
  return segment;
}

}  // namespace etgpu
