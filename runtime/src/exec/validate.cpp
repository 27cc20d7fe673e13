// Shape and dtype rules per op, for concrete shapes. A payload may be hostile: these checks are
// what lets every engine index its operands without bounds checks of its own.
#include <algorithm>
#include <utility>

#include "exec/decode.h"

namespace etgpu {
namespace {

int normalize_dim(int dim, int rank) { return dim < 0 ? dim + rank : dim; }

// `x` broadcasts to `out` (numpy rules, aligned at the right).
bool broadcasts_to(const TensorRef& x, const TensorRef& out) {
  if (x.rank > out.rank) return false;
  for (int i = 1; i <= x.rank; ++i) {
    const int64_t xs = x.shape[x.rank - i], os = out.shape[out.rank - i];
    if (xs != os && xs != 1) return false;
  }
  return true;
}

Status check(const Node& n, const UnaryParams&) {
  ETGPU_CHECK(same_shape(n.in[0], n.out), "unary: output shape differs from input");
  return Status::ok();
}

Status check(const Node& n, const BinaryParams& p) {
  ETGPU_CHECK(broadcasts_to(n.in[0], n.out), "binary: a does not broadcast to the output");
  if (p.has_b) ETGPU_CHECK(broadcasts_to(n.in[1], n.out), "binary: b does not broadcast to the output");
  return Status::ok();
}

Status check(const Node& n, const WhereParams&) {
  for (int i = 0; i < 3; ++i) ETGPU_CHECK(broadcasts_to(n.in[i], n.out), "where: operand ", i,
                                          " does not broadcast to the output");
  ETGPU_CHECK(n.in[0].dtype == DType::Bool, "where: condition must be bool");
  return Status::ok();
}

Status check(const Node& n, const CastParams&) {
  ETGPU_CHECK(n.in[0].numel() == n.out.numel(), "cast: element counts differ");
  return Status::ok();
}

Status check(const Node&, const FillParams&) { return Status::ok(); }
Status check(const Node&, const ArangeParams&) { return Status::ok(); }

Status check(const Node& n, const MatMulParams& p) {
  const TensorRef &a = n.in[0], &b = n.in[1], &o = n.out;
  ETGPU_CHECK(a.rank >= 2 && b.rank >= 2 && o.rank >= 2, "matmul: operands need rank >= 2");
  const int64_t m = a.size(-2), k = a.size(-1);
  const int64_t bk = p.trans_b ? b.size(-1) : b.size(-2), nn = p.trans_b ? b.size(-2) : b.size(-1);
  ETGPU_CHECK(k == bk, "matmul: inner dims differ (", k, " vs ", bk, ")");
  ETGPU_CHECK(o.size(-2) == m && o.size(-1) == nn, "matmul: output is not [", m, ", ", nn, "]");
  TensorRef batch_a = a, batch_b = b, batch_o = o;
  batch_a.rank -= 2; batch_b.rank -= 2; batch_o.rank -= 2;
  ETGPU_CHECK(broadcasts_to(batch_a, batch_o) && broadcasts_to(batch_b, batch_o),
              "matmul: batch dims do not broadcast");
  ETGPU_CHECK(a.dtype == b.dtype && a.dtype == o.dtype && is_floating(a.dtype),
              "matmul: operands must share one float dtype");
  if (p.has_bias) {
    const TensorRef& bias = n.in[2];
    ETGPU_CHECK(broadcasts_to(bias, o), "matmul: bias does not broadcast to the output");
  }
  return Status::ok();
}

Status check_dims_in_range(const std::vector<int>& dims, int rank, const char* op) {
  for (int d : dims) {
    const int nd = normalize_dim(d, rank);
    ETGPU_CHECK(nd >= 0 && nd < std::max(rank, 1), op, ": dim ", d, " out of range for rank ", rank);
  }
  return Status::ok();
}

Status check(const Node& n, const ReduceParams& p) {
  ETGPU_RETURN_IF_ERROR(check_dims_in_range(p.dims, n.in[0].rank, "reduce"));
  int64_t kept = 1;
  int kept_rank = 0;
  for (int d = 0; d < n.in[0].rank; ++d) {
    bool reduced = p.dims.empty();
    for (int r : p.dims) reduced |= normalize_dim(r, n.in[0].rank) == d;
    if (!reduced) kept *= n.in[0].shape[d];
    if (!reduced) ++kept_rank;
  }
  ETGPU_CHECK(n.out.numel() == kept, "reduce: output has ", n.out.numel(), " elements, expected ", kept);
  const int rank = p.keepdim ? n.in[0].rank : kept_rank;
  ETGPU_CHECK(n.out.rank == rank, "reduce: output rank ", n.out.rank, " should be ", rank);
  if (p.op == ReduceOp::Argmax || p.op == ReduceOp::Argmin) {
    ETGPU_CHECK(n.out.dtype == DType::I64, "reduce: argmax/argmin output must be int64");
  }
  if (p.op == ReduceOp::Mean) ETGPU_CHECK(is_floating(n.out.dtype), "reduce: mean output must be a float");
  return Status::ok();
}

Status check(const Node& n, const SoftmaxParams& p) {
  ETGPU_RETURN_IF_ERROR(check_dims_in_range({p.dim}, n.in[0].rank, "softmax"));
  ETGPU_CHECK(same_shape(n.in[0], n.out), "softmax: output shape differs from input");
  ETGPU_CHECK(is_floating(n.in[0].dtype) && is_floating(n.out.dtype), "softmax: needs float tensors");
  return Status::ok();
}

Status check(const Node& n, const LayerNormParams& p) {
  ETGPU_CHECK(same_shape(n.in[0], n.out), "layer_norm: output shape differs from input");
  ETGPU_CHECK(p.normalized_ndim >= 1 && p.normalized_ndim <= n.in[0].rank, "layer_norm: bad normalized_ndim");
  int64_t inner = 1;
  for (int d = n.in[0].rank - p.normalized_ndim; d < n.in[0].rank; ++d) inner *= n.in[0].shape[d];
  for (size_t i = 1; i < n.in.size(); ++i) {
    ETGPU_CHECK(n.in[i].numel() == inner, "layer_norm: affine parameter has ", n.in[i].numel(),
                " elements, expected ", inner);
  }
  return Status::ok();
}

Status check(const Node& n, const RmsNormParams& p) {
  ETGPU_CHECK(same_shape(n.in[0], n.out) && n.in[0].rank >= 1, "rms_norm: output shape differs from input");
  if (p.has_weight) ETGPU_CHECK(n.in[1].numel() == n.in[0].size(-1), "rms_norm: weight size mismatch");
  return Status::ok();
}

// The normed output follows RmsNorm's rules; the sum is written with x's shape and dtype, and the
// kernels read x, residual and sum as one dtype (no broadcasting, no conversion).
Status check(const Node& n, const AddRmsNormParams& p) {
  const TensorRef &x = n.in[0], &residual = n.in[1];
  ETGPU_CHECK(n.extra_out.size() == 1, "add_rms_norm: needs exactly one sum output");
  const TensorRef& sum = n.extra_out[0];
  ETGPU_CHECK(is_floating(x.dtype) && residual.dtype == x.dtype && sum.dtype == x.dtype,
              "add_rms_norm: x, residual and sum must share one float dtype");
  ETGPU_CHECK(same_shape(x, residual) && same_shape(x, sum), "add_rms_norm: x, residual and sum must have one shape");
  ETGPU_CHECK(same_shape(x, n.out) && x.rank >= 1, "add_rms_norm: output shape differs from input");
  if (p.norm.has_weight) ETGPU_CHECK(n.in[2].numel() == x.size(-1), "add_rms_norm: weight size mismatch");
  return Status::ok();
}

Status check(const Node& n, const GluParams& p) {
  const TensorRef &a = n.in[0], &b = n.in[1], &o = n.out;
  ETGPU_CHECK(p.act == UnaryOp::Silu || p.act == UnaryOp::GeluErf || p.act == UnaryOp::GeluTanh,
              "glu: activation must be silu or gelu");
  ETGPU_CHECK(is_floating(a.dtype) && b.dtype == a.dtype && o.dtype == a.dtype, "glu: a, b and out must share one float dtype");
  ETGPU_CHECK(same_shape(a, b) && same_shape(a, o), "glu: a, b and out must have one shape");
  return Status::ok();
}

// Every output has x's leading dims and x's dtype; their last dims split w's rows in order. A Glu
// output follows Glu's rules over the two linear outputs.
Status check(const Node& n, const SplitLinearParams& p) {
  const TensorRef &x = n.in[0], &w = n.in[1];
  ETGPU_CHECK(is_floating(x.dtype) && w.dtype == x.dtype, "split_linear: x and w must share one float dtype");
  ETGPU_CHECK(x.rank >= 1 && w.rank == 2 && w.shape[1] == x.size(-1), "split_linear: w must be [N, ", x.size(-1), "]");
  const size_t outputs = split_linear_outputs(n, p);
  ETGPU_CHECK(outputs >= 1 && outputs <= static_cast<size_t>(kMaxSplitOutputs), "split_linear: too many outputs");
  if (p.glu) {
    ETGPU_CHECK(outputs == 2, "split_linear: a glu output needs exactly two linear outputs");
    ETGPU_RETURN_IF_ERROR(check(split_linear_glu(n, p), GluParams{p.act}));
  }
  int64_t rows = 0;
  for (size_t i = 0; i < outputs; ++i) {
    const TensorRef& o = split_linear_output(n, i);
    ETGPU_CHECK(o.dtype == x.dtype && o.rank == x.rank, "split_linear: output ", i, " must have x's dtype and rank");
    for (int d = 0; d + 1 < x.rank; ++d) {
      ETGPU_CHECK(o.shape[d] == x.shape[d], "split_linear: output ", i, " differs from x at dim ", d);
    }
    rows += o.size(-1);
  }
  ETGPU_CHECK(rows == w.shape[0], "split_linear: outputs have ", rows, " columns in all, w has ", w.shape[0], " rows");
  if (p.has_bias) {
    const TensorRef& bias = n.in[2];
    ETGPU_CHECK(bias.dtype == x.dtype && bias.rank == 1 && bias.shape[0] == rows,
                "split_linear: bias must be [", rows, "] of x's dtype");
  }
  return Status::ok();
}

// Movement kernels copy elements of x's size into out: the dtypes must match or a wider input
// would write past the end of a narrower output.
Status check_same_dtype(const TensorRef& x, const TensorRef& out, const char* op) {
  ETGPU_CHECK(x.dtype == out.dtype, op, ": input is ", dtype_name(x.dtype), " but the output is ",
              dtype_name(out.dtype));
  return Status::ok();
}

Status check(const Node& n, const PermuteParams& p) {
  ETGPU_RETURN_IF_ERROR(check_same_dtype(n.in[0], n.out, "permute"));
  const int rank = n.in[0].rank;
  ETGPU_CHECK(static_cast<int>(p.perm.size()) == rank && n.out.rank == rank, "permute: rank mismatch");
  std::vector<bool> seen(rank, false);
  for (int i = 0; i < rank; ++i) {
    const int d = normalize_dim(p.perm[i], rank);
    ETGPU_CHECK(d >= 0 && d < rank && !seen[d], "permute: invalid permutation");
    seen[d] = true;
    ETGPU_CHECK(n.out.shape[i] == n.in[0].shape[d], "permute: output shape mismatch");
  }
  return Status::ok();
}

Status check(const Node& n, const ExpandParams&) {
  ETGPU_RETURN_IF_ERROR(check_same_dtype(n.in[0], n.out, "expand"));
  ETGPU_CHECK(broadcasts_to(n.in[0], n.out), "expand: input does not broadcast to the output");
  return Status::ok();
}

Status check_same_except(const TensorRef& x, const TensorRef& out, int dim, const char* op) {
  ETGPU_CHECK(x.rank == out.rank, op, ": rank mismatch");
  for (int d = 0; d < x.rank; ++d) {
    ETGPU_CHECK(d == dim || x.shape[d] == out.shape[d], op, ": size mismatch at dim ", d);
  }
  return Status::ok();
}

Status check(const Node& n, const SliceParams& p) {
  const TensorRef &x = n.in[0];
  const int dim = normalize_dim(p.dim, x.rank);
  ETGPU_CHECK(dim >= 0 && dim < x.rank && p.step >= 1, "slice: bad dim or step");
  ETGPU_RETURN_IF_ERROR(check_same_except(x, n.out, dim, "slice"));
  ETGPU_RETURN_IF_ERROR(check_same_dtype(x, n.out, "slice"));
  const int64_t len = n.out.shape[dim];
  // Written as divisions: start + (len - 1) * step can overflow for a hostile step.
  const bool fits = len == 0 || (p.start >= 0 && p.start < x.shape[dim] &&
                                 (len == 1 || p.step <= (x.shape[dim] - 1 - p.start) / (len - 1)));
  ETGPU_CHECK(fits, "slice: [", p.start, " + ", len, " x ", p.step, ") exceeds size ", x.shape[dim]);
  return Status::ok();
}

Status check(const Node& n, const SelectParams& p) {
  const TensorRef& x = n.in[0];
  const int dim = normalize_dim(p.dim, x.rank);
  ETGPU_CHECK(dim >= 0 && dim < x.rank && n.out.rank == x.rank - 1, "select: bad dim");
  ETGPU_RETURN_IF_ERROR(check_same_dtype(x, n.out, "select"));
  for (int d = 0; d < n.out.rank; ++d) {
    ETGPU_CHECK(n.out.shape[d] == x.shape[d < dim ? d : d + 1], "select: output shape mismatch at dim ", d);
  }
  ETGPU_CHECK(p.index >= 0 && p.index < x.shape[dim], "select: index ", p.index,
              " is out of range for size ", x.shape[dim]);
  return Status::ok();
}

Status check(const Node& n, const CatParams& p) {
  const int dim = normalize_dim(p.dim, n.out.rank);
  ETGPU_CHECK(dim >= 0 && dim < n.out.rank, "cat: bad dim");
  int64_t total = 0;
  for (const TensorRef& x : n.in) {
    ETGPU_RETURN_IF_ERROR(check_same_except(x, n.out, dim, "cat"));
    ETGPU_CHECK(x.dtype == n.out.dtype, "cat: dtype mismatch");
    total += x.shape[dim];
  }
  ETGPU_CHECK(total == n.out.shape[dim], "cat: inputs sum to ", total, " along dim, output has ",
              n.out.shape[dim]);
  return Status::ok();
}

Status check_index_dtype(const TensorRef& index, const char* op) {
  ETGPU_CHECK(index.dtype == DType::I64 || index.dtype == DType::I32, op, ": index must be int64 or int32");
  return Status::ok();
}

Status check(const Node& n, const IndexSelectParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1];
  const int dim = normalize_dim(p.dim, x.rank);
  ETGPU_RETURN_IF_ERROR(check_index_dtype(index, "index_select"));
  ETGPU_CHECK(x.dtype == n.out.dtype, "index_select: output dtype differs from input");
  ETGPU_CHECK(dim >= 0 && dim < x.rank && n.out.rank == x.rank - 1 + index.rank,
              "index_select: output rank must be x.rank - 1 + index.rank");
  // out = x.shape[:dim] + index.shape + x.shape[dim+1:]
  for (int d = 0; d < dim; ++d) ETGPU_CHECK(n.out.shape[d] == x.shape[d], "index_select: shape mismatch");
  for (int d = 0; d < index.rank; ++d) ETGPU_CHECK(n.out.shape[dim + d] == index.shape[d], "index_select: shape mismatch");
  for (int d = dim + 1; d < x.rank; ++d) ETGPU_CHECK(n.out.shape[d - 1 + index.rank] == x.shape[d], "index_select: shape mismatch");
  return Status::ok();
}

Status check(const Node& n, const GatherParams& p) {
  const TensorRef &x = n.in[0], &index = n.in[1];
  const int dim = normalize_dim(p.dim, x.rank);
  ETGPU_RETURN_IF_ERROR(check_index_dtype(index, "gather"));
  ETGPU_CHECK(x.dtype == n.out.dtype, "gather: output dtype differs from input");
  ETGPU_CHECK(dim >= 0 && dim < x.rank && index.rank == x.rank && same_shape(index, n.out), "gather: shape mismatch");
  for (int d = 0; d < x.rank; ++d) ETGPU_CHECK(d == dim || index.shape[d] <= x.shape[d], "gather: index larger than input");
  return Status::ok();
}

Status check(const Node& n, const SdpaParams& p) {
  const TensorRef &q = n.in[0], &k = n.in[1], &v = n.in[2], &o = n.out;
  ETGPU_CHECK(q.rank == 4 && k.rank == 4 && v.rank == 4 && o.rank == 4, "sdpa: q, k, v and out must be 4-d");
  ETGPU_CHECK(k.shape[0] == q.shape[0] && v.shape[0] == q.shape[0], "sdpa: batch mismatch");
  ETGPU_CHECK(k.shape[1] == v.shape[1] && k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0,
              "sdpa: query heads ", q.shape[1], " are not a multiple of key heads ", k.shape[1]);
  ETGPU_CHECK(k.shape[2] == v.shape[2] && k.shape[3] == q.shape[3], "sdpa: k/v shape mismatch");
  const int heads_at = p.out_seq_major ? 2 : 1, queries_at = p.out_seq_major ? 1 : 2;
  ETGPU_CHECK(o.shape[0] == q.shape[0] && o.shape[heads_at] == q.shape[1] && o.shape[queries_at] == q.shape[2] &&
                  o.shape[3] == v.shape[3],
              p.out_seq_major ? "sdpa: a seq-major output must be [B, L, H, Ev]" : "sdpa: output shape mismatch");
  ETGPU_CHECK(q.dtype == k.dtype && q.dtype == v.dtype && q.dtype == o.dtype && is_floating(q.dtype),
              "sdpa: q, k, v must share one float dtype");
  if (p.has_mask) {
    ETGPU_CHECK(n.in[3].dtype == DType::Bool || is_floating(n.in[3].dtype), "sdpa: mask must be bool or float");
    ETGPU_CHECK(broadcasts_to(n.in[3], sdpa_scores(n)), "sdpa: mask does not broadcast to [B, H, L, S]");
  }
  return Status::ok();
}

Status check(const Node& n, const CopyIntoParams& p) {
  const TensorRef &x = n.in[0], &dst = n.out;
  const int dim = normalize_dim(p.dim, dst.rank);
  ETGPU_CHECK(dim >= 0 && dim < dst.rank, "copy_into: bad dim");
  ETGPU_RETURN_IF_ERROR(check_same_except(x, dst, dim, "copy_into"));
  ETGPU_CHECK(x.dtype == dst.dtype, "copy_into: dtype mismatch");
  ETGPU_CHECK(p.start >= 0 && p.start <= dst.shape[dim] - x.shape[dim], "copy_into: writing [", p.start,
              ", ", p.start + x.shape[dim], ") past the end of size ", dst.shape[dim]);
  return Status::ok();
}

// Index values are data, checked by the kernels (which never write out of bounds).
// A seq-major x [B, L, H, D] is checked as the rows it writes, [B, H, L, D].
Status check(const Node& n, const IndexCopyParams& p) {
  const TensorRef &index = n.in[0], &dst = n.out;
  TensorRef x = n.in[1];
  if (p.x_seq_major) std::swap(x.shape[1], x.shape[2]);
  const int dim = normalize_dim(p.dim, dst.rank);
  ETGPU_CHECK(dim >= 0 && dim < dst.rank, "index_copy: bad dim");
  ETGPU_CHECK(!p.x_seq_major || (x.rank == 4 && dst.rank == 4 && dim == 2),
              "index_copy: a seq-major x [B, L, H, D] needs a 4-d dst [B, H, S, D] written along dim 2");
  ETGPU_RETURN_IF_ERROR(check_index_dtype(index, "index_copy"));
  ETGPU_CHECK(index.rank == 1 && index.shape[0] == x.shape[dim], "index_copy: index must be 1-d with one "
              "entry per slice of x (", x.shape[dim], ")");
  ETGPU_RETURN_IF_ERROR(check_same_except(x, dst, dim, "index_copy"));
  ETGPU_CHECK(x.dtype == dst.dtype, "index_copy: dtype mismatch");
  return Status::ok();
}

// The packed weight operands (codes, scales [, zeros]) starting at n.in[first] describe an
// [rows, cols] matrix in the layout ops.h documents.
Status check_quant_weight(const Node& n, size_t first, const QuantWeightParams& w, int64_t rows,
                          int64_t cols, const char* op) {
  const size_t needed = first + 2 + (w.has_zeros ? 1 : 0);
  ETGPU_CHECK(n.in.size() >= needed, op, ": missing weight operands");
  const TensorRef &codes = n.in[first], &scales = n.in[first + 1];
  if (w.scheme == QuantScheme::NvFp4) {
    ETGPU_CHECK(w.bits == 4 && w.group == 16 && !w.has_zeros, op, ": nvfp4 needs bits 4, group 16, no zeros");
    ETGPU_CHECK(scales.dtype == DType::U8, op, ": nvfp4 scales must be e4m3 bytes (u8)");
  } else {
    ETGPU_CHECK(w.bits == 2 || w.bits == 4 || w.bits == 8, op, ": bits must be 2, 4 or 8, not ", w.bits);
    ETGPU_CHECK(is_floating(scales.dtype), op, ": scales must be f32, f16 or bf16");
    ETGPU_CHECK(!w.zero_is_float || w.has_zeros, op, ": a float zero domain needs zeros");
  }
  ETGPU_CHECK(w.group > 0 && cols % w.group == 0, op, ": group ", w.group, " does not divide ", cols);
  ETGPU_CHECK((cols * w.bits) % 8 == 0, op, ": a row is not a whole number of bytes");
  ETGPU_CHECK(codes.dtype == DType::U8 && codes.rank == 2 && codes.shape[0] == rows &&
                  codes.shape[1] == cols * w.bits / 8,
              op, ": codes must be u8 [", rows, ", ", cols * w.bits / 8, "]");
  const int64_t groups = cols / w.group;
  ETGPU_CHECK(scales.rank == 2 && scales.shape[0] == rows && scales.shape[1] == groups, op,
              ": scales must be [", rows, ", ", groups, "]");
  if (w.has_zeros) {
    const TensorRef& zeros = n.in[first + 2];
    ETGPU_CHECK(zeros.dtype == scales.dtype && same_shape(zeros, scales), op,
                ": zeros must match the scales' dtype and shape");
  }
  return Status::ok();
}

Status check(const Node& n, const QuantLinearParams& p) {
  const TensorRef &x = n.in[0], &o = n.out;
  ETGPU_CHECK(is_floating(x.dtype) && o.dtype == x.dtype, "quant_linear: x and out must share a float dtype");
  ETGPU_CHECK(x.rank >= 1 && o.rank == x.rank, "quant_linear: out must have x's rank");
  for (int d = 0; d + 1 < x.rank; ++d) ETGPU_CHECK(x.shape[d] == o.shape[d], "quant_linear: leading dims differ");
  const int64_t k = x.size(-1), rows = o.size(-1);
  ETGPU_RETURN_IF_ERROR(check_quant_weight(n, 1, p.w, rows, k, "quant_linear"));
  const size_t bias_at = 3 + (p.w.has_zeros ? 1 : 0);
  ETGPU_CHECK(n.in.size() == bias_at + (p.has_bias ? 1 : 0), "quant_linear: wrong operand count");
  if (p.has_bias) {
    const TensorRef& bias = n.in[bias_at];
    ETGPU_CHECK(bias.dtype == x.dtype && bias.rank == 1 && bias.shape[0] == rows,
                "quant_linear: bias must be [", rows, "] of x's dtype");
  }
  return Status::ok();
}

Status check(const Node& n, const QuantEmbeddingParams& p) {
  const TensorRef &index = n.in[0], &o = n.out;
  ETGPU_RETURN_IF_ERROR(check_index_dtype(index, "quant_embedding"));
  ETGPU_CHECK(is_floating(o.dtype) && o.rank == index.rank + 1, "quant_embedding: out must be float [..., dim]");
  for (int d = 0; d < index.rank; ++d) ETGPU_CHECK(index.shape[d] == o.shape[d], "quant_embedding: leading dims differ");
  ETGPU_CHECK(n.in.size() == 3u + (p.w.has_zeros ? 1 : 0), "quant_embedding: wrong operand count");
  return check_quant_weight(n, 1, p.w, n.in[1].rank == 2 ? n.in[1].shape[0] : -1, o.size(-1), "quant_embedding");
}

// With a cache, `o` below is the rotated rows' shape (rope_rows), checked as a plain Rope's out,
// and the write into the cache as IndexCopy's: index 1-d with one entry per row, the rows the
// cache's shape but along cache_dim; the rotated output, if any, has the rows' shape and dtype.
Status check_rope_cache(const Node& n, const RopeParams& p) {
  const TensorRef& cache = n.out;
  ETGPU_CHECK(n.extra_out.size() <= 1, "rope: a cache write has at most one rotated output");
  ETGPU_CHECK(p.cache_dim >= 0 && p.cache_dim < cache.rank, "rope: bad cache_dim");
  const TensorRef& index = n.in[3];
  ETGPU_RETURN_IF_ERROR(check_index_dtype(index, "rope"));
  ETGPU_CHECK(index.rank == 1, "rope: the cache index must be 1-d");
  if (!n.extra_out.empty()) {
    const TensorRef rows = rope_rows(n, p);
    ETGPU_CHECK(same_shape(n.extra_out[0], rows) && n.extra_out[0].dtype == cache.dtype,
                "rope: the rotated output must have the cache rows' shape and dtype");
  }
  return Status::ok();
}

// The norm's weight scales each row of x elementwise: [D] (x's last dim), and of x's dtype, the
// storage type the kernels load it as.
Status check_rope_norm(const Node& n, const RopeParams& p) {
  const TensorRef& x = n.in[0];
  const TensorRef* w = rope_norm_weight(n, p);
  if (!w) return Status::ok();
  ETGPU_CHECK(w->rank == 1 && w->shape[0] == x.size(-1), "rope: the norm weight must be 1-d with x's last dim (",
              x.size(-1), ") elements");
  ETGPU_CHECK(w->dtype == x.dtype, "rope: the norm weight is ", dtype_name(w->dtype), " but x is ",
              dtype_name(x.dtype));
  return Status::ok();
}

Status check(const Node& n, const RopeParams& p) {
  // x, cos, sin [, index] [, norm weight]: the decoder lists them so; checked before any is read.
  const size_t operands = 3 + (p.cache_dim >= 0 ? 1 : 0) + (p.norm && p.norm->has_weight ? 1 : 0);
  ETGPU_CHECK(n.in.size() == operands, "rope: expected ", operands, " operands, got ", n.in.size());
  if (p.cache_dim >= 0) ETGPU_RETURN_IF_ERROR(check_rope_cache(n, p));
  const TensorRef &x = n.in[0], &cos = n.in[1], &sin = n.in[2];
  const TensorRef o = rope_rows(n, p);
  ETGPU_CHECK(is_floating(x.dtype) && cos.dtype == x.dtype && sin.dtype == x.dtype && o.dtype == x.dtype,
              "rope: x, cos, sin and out must share one float dtype");
  ETGPU_CHECK(x.rank >= 1 && o.rank == x.rank && o.size(-1) % 2 == 0, "rope: out must have x's rank, its last dim even");
  if (p.x_seq_major) {
    ETGPU_CHECK(x.rank == 4 && o.shape[0] == x.shape[0] && o.shape[1] == x.shape[2] && o.shape[2] == x.shape[1] &&
                    o.shape[3] == x.shape[3], "rope: a seq-major x [B, L, H, D] needs out [B, H, L, D]");
  } else {
    ETGPU_CHECK(same_shape(x, o), "rope: out must be x's shape");
  }
  ETGPU_CHECK(broadcasts_to(cos, o) && broadcasts_to(sin, o), "rope: cos and sin must broadcast to out");
  return check_rope_norm(n, p);
}


}  // namespace

Status validate_node(const Node& node) {
  Status status = std::visit([&](const auto& params) { return check(node, params); }, node.params);
  if (!status.is_ok()) return err(status.message());
  return status;
}

const char* op_name(const OpParams& params) {
  static const char* names[] = {"unary", "binary", "where", "cast", "fill", "arange", "matmul",
                                "reduce", "softmax", "layer_norm", "rms_norm", "permute", "expand",
                                "slice", "select", "cat", "index_select", "gather", "sdpa",
                                "copy_into", "index_copy", "quant_linear", "quant_embedding",
                                "rope", "glu", "add_rms_norm", "split_linear"};
  static_assert(sizeof(names) / sizeof(names[0]) == std::variant_size_v<OpParams>);
  return names[params.index()];
}

}  // namespace etgpu
