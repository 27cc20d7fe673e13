// MatMul on the GPU through cuBLASLt: batched with broadcast batch dims, optional bias. A batch
// operand that is either complete or fully broadcast becomes one strided-batched call (stride 0
// for the broadcast side; a broadcast B with a complete A folds the batch into M, the linear-layer
// case). Partial broadcasting (e.g. [2, 1] against [1, 3] batch dims) loops over batches.
// Bias: the output is first filled with the broadcast bias and the product accumulates onto it
// (beta = 1), which handles any broadcastable bias shape with one rounding. Decode-sized linear
// layers (a few rows against a [N, K] weight) take the GEMV kernel in gemv.cu instead.
// SplitLinear (sibling linears over one concatenated weight): decode's rows are one GEMV launch
// over the whole weight, each output column stored into its sibling's tensor and the bias (and a
// gated MLP's Glu) done in the epilogue; anything else runs each sibling as the MatMul it
// replaced, on its rows of the weight, then the Glu kernel (cuBLASLt per sibling, as before the
// merge: prefill is compute-bound, so one launch more or less per sibling does not matter there).
// norm_linear: a decode step's RMSNorm folded into the GEMV of the linear after it (gemv.h GemvNorm).
#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/gemv.h"

namespace etgpu::cuda {
namespace {

int64_t batch_count(const TensorRef& t) {
  int64_t n = 1;
  for (int d = 0; d < t.rank - 2; ++d) n *= t.shape[d];
  return n;
}

// A bias of out's dtype is written into out before the product, which then accumulates onto it.
bool has_bias_in_place(const Node& n, const MatMulParams& p) { return p.has_bias && n.in[2].dtype == n.out.dtype; }

// The one product a MatMul is when b is a single matrix: a's batches fold into M (a and out are
// contiguous [batches * M, K] and [batches * M, N]). False when it is batched otherwise.
bool folded_product(const Node& n, const MatMulParams& p, GemmProblem* g) {
  const TensorRef &a = n.in[0], &b = n.in[1], &out = n.out;
  const int64_t batches = batch_count(out);
  if (batch_count(b) != 1 || batch_count(a) != batches) return false;
  *g = GemmProblem{out.dtype, p.trans_b, a.size(-2) * batches, out.size(-1), a.size(-1), 1, 0, 0, 0,
                   has_bias_in_place(n, p)};
  return true;
}

GemmProblem split_linear_product(const Node& n) {
  const TensorRef &x = n.in[0], &w = n.in[1];
  const int64_t k = x.size(-1);
  return GemmProblem{x.dtype, true, k > 0 ? x.numel() / k : 0, w.size(0), k, 1, 0, 0, 0, false};
}

GemvOutputs split_linear_gemv_outputs(const Node& n, const SplitLinearParams& p) {
  GemvOutputs outputs;
  outputs.count = static_cast<int>(split_linear_outputs(n, p));
  for (int i = 0; i < outputs.count; ++i) {
    outputs.data[i] = split_linear_output(n, i).data;
    outputs.begin[i + 1] = outputs.begin[i] + split_linear_output(n, i).size(-1);
  }
  outputs.bias = p.has_bias ? n.in[2].data : nullptr;
  outputs.glu = p.glu ? n.extra_out.back().data : nullptr;
  outputs.act = p.act;
  return outputs;
}

Status matmul_with(const Context& c, const Node& n, const MatMulParams& p, const GemvNorm* norm) {
  const TensorRef &a = n.in[0], &b = n.in[1], &out = n.out;
  if (out.numel() == 0) return Status::ok();
  const int64_t m = a.size(-2), k = a.size(-1), cols = out.size(-1);
  const int64_t batches = batch_count(out), a_batches = batch_count(a), b_batches = batch_count(b);
  const TensorRef* bias = p.has_bias ? &n.in[2] : nullptr;
  const bool bias_in_place = has_bias_in_place(n, p);
  if (bias_in_place) {
    ETGPU_RETURN_IF_ERROR(broadcast_copy(c, *bias, out));
  } else if (k == 0) {
    // An empty inner dim still defines the product: zeros.
    ETGPU_CUDA_CHECK(cudaMemsetAsync(out.data, 0, out.nbytes(), c.stream));
  }
  if (k > 0) {
    const size_t element = dtype_size(out.dtype);
    GemmProblem g{out.dtype, p.trans_b, m, cols, k, 1, 0, 0, 0, bias_in_place};
    if (folded_product(n, p, &g)) {
      bool handled = false;
      ETGPU_RETURN_IF_ERROR(gemv(c, g, a.data, b.data, single_output(out.data, cols), &handled, norm));
      // norm_linear asked gemv_takes first; without the GEMV the norm would not have run.
      ETGPU_CHECK(handled || !norm, "cuda: the GEMV refused a product with a norm it had accepted");
      if (!handled) ETGPU_RETURN_IF_ERROR(c.blas->gemm(g, a.data, b.data, out.data, c.stream));
    } else if ((a_batches == batches || a_batches == 1) && (b_batches == batches || b_batches == 1) &&
               batches <= INT32_MAX) {
      g.batch = static_cast<int32_t>(batches);
      g.stride_a = a_batches == 1 ? 0 : m * k;
      g.stride_b = b_batches == 1 ? 0 : k * cols;
      g.stride_c = m * cols;
      ETGPU_RETURN_IF_ERROR(c.blas->gemm(g, a.data, b.data, out.data, c.stream));
    } else {
      for (int64_t i = 0; i < batches; ++i) {
        const auto* ap = static_cast<const uint8_t*>(a.data) + matmul_batch_offset(a, out, i) * m * k * element;
        const auto* bp = static_cast<const uint8_t*>(b.data) + matmul_batch_offset(b, out, i) * k * cols * element;
        auto* cp = static_cast<uint8_t*>(out.data) + i * m * cols * element;
        ETGPU_RETURN_IF_ERROR(c.blas->gemm(g, ap, bp, cp, c.stream));
      }
    }
  }
  if (bias && !bias_in_place) {
    // A bias of another dtype: add it after the product (one more rounding, still within the
    // half-precision tolerance).
    Node add{BinaryParams{BinaryOp::Add, true, 0.0, false, 1.0}, {out, *bias}, out};
    ETGPU_RETURN_IF_ERROR(binary(c, add, std::get<BinaryParams>(add.params)));
  }
  return Status::ok();
}

}  // namespace

Status matmul(const Context& c, const Node& n, const MatMulParams& p) { return matmul_with(c, n, p, nullptr); }

Status split_linear(const Context& c, const Node& n, const SplitLinearParams& p) {
  const GemmProblem g = split_linear_product(n);
  if (g.m == 0) return Status::ok();
  const GemvOutputs outputs = split_linear_gemv_outputs(n, p);
  bool handled = false;
  if (g.k > 0) ETGPU_RETURN_IF_ERROR(gemv(c, g, n.in[0].data, n.in[1].data, outputs, &handled));
  if (handled) return Status::ok();
  for (int i = 0; i < outputs.count; ++i) {
    const Node segment = split_linear_segment(n, p, i, outputs.begin[i]);
    ETGPU_RETURN_IF_ERROR(matmul(c, segment, std::get<MatMulParams>(segment.params)));
  }
  return p.glu ? glu(c, split_linear_glu(n, p), GluParams{p.act}) : Status::ok();
}

namespace {

// Whether the folded launch would race: block 0 writes the norm's outputs while other blocks
// still read its inputs, and the product's outputs are written while some block may not have read
// the norm's inputs yet (or, for the norm's outputs, may overwrite them). Separate launches order
// all of that, and the memory plan may well give a tensor that dies at the norm (its input, or a
// sum nothing reads) to the linear's outputs, so any shared byte keeps the two launches.
bool folding_races(const Node& norm, const Node& linear) {
  auto written_by_linear = [&](const TensorRef& t) {
    if (bytes_overlap(t, linear.out)) return true;
    for (const TensorRef& o : linear.extra_out) {
      if (bytes_overlap(t, o)) return true;
    }
    return false;
  };
  const bool add = std::holds_alternative<AddRmsNormParams>(norm.params);
  const TensorRef* reads[] = {&norm.in[0], add ? &norm.in[1] : nullptr};
  const TensorRef* writes[] = {&norm.out, add ? &norm.extra_out[0] : nullptr};
  for (const TensorRef* r : reads) {
    if (!r) continue;
    if (written_by_linear(*r)) return true;
    for (const TensorRef* w : writes) {
      if (w && bytes_overlap(*r, *w)) return true;
    }
  }
  for (const TensorRef* w : writes) {
    if (w && written_by_linear(*w)) return true;
  }
  return false;
}

}  // namespace

// The widest product a norm is folded into: a decoder layer's q/k/v or gate/up, not an LM head.
constexpr int64_t kNormFoldMaxColumns = 32768;

Status norm_linear(const Context& c, const Node& norm, const Node& linear, bool* fused) {
  *fused = false;
  const auto* rms = std::get_if<RmsNormParams>(&norm.params);
  const auto* add = std::get_if<AddRmsNormParams>(&norm.params);
  const auto* mm = std::get_if<MatMulParams>(&linear.params);
  const auto* split = std::get_if<SplitLinearParams>(&linear.params);
  if ((!rms && !add) || (!mm && !split)) return Status::ok();
  const RmsNormParams& p = rms ? *rms : add->norm;
  const TensorRef &x = norm.in[0], &y = norm.out, &a = linear.in[0];
  const TensorRef* weight = p.has_weight ? &norm.in[add ? 2 : 1] : nullptr;
  // The product reads exactly the norm's output as its [M, K] rows (one row of the norm per row of
  // the product), and the prologue computes in one dtype, as the norm's vector kernel does.
  if (a.data != y.data || a.numel() != y.numel() || a.rank == 0 || a.size(-1) != y.size(-1) ||
      x.dtype != y.dtype || a.dtype != y.dtype || (weight && weight->dtype != y.dtype)) {
    return Status::ok();
  }
  GemmProblem g{};
  if (mm) {
    // A bias of another dtype would be a Binary after the product: not a decode linear's shape.
    const bool bias_after = mm->has_bias && !has_bias_in_place(linear, *mm);
    if (linear.out.numel() == 0 || !folded_product(linear, *mm, &g) || bias_after) return Status::ok();
  } else {
    g = split_linear_product(linear);
  }
  const GemvNorm prologue{x.data, add ? norm.in[1].data : nullptr, add ? norm.extra_out[0].data : nullptr,
                          weight ? weight->data : nullptr, y.data, static_cast<float>(p.eps), p.unit_offset,
                          p.round_normalized};
  // The actual shapes decide, at every run: a prefill's rows (M > 4) keep the two launches. So
  // does a wide product (an LM head): every block recomputes the norm, and its grid is many waves
  // of blocks (folding every norm of a qwen3-0.6b decode step, its 151936-column head included,
  // made the step 4% slower on the H200).
  if (g.m == 0 || g.k == 0 || g.n > kNormFoldMaxColumns || g.dtype != y.dtype ||
      !gemv_takes(g, a.data, linear.in[1].data, &prologue) ||
      folding_races(norm, linear)) {
    return Status::ok();
  }
  *fused = true;
  if (mm) return matmul_with(c, linear, *mm, &prologue);
  bool handled = false;
  ETGPU_RETURN_IF_ERROR(gemv(c, g, a.data, linear.in[1].data, split_linear_gemv_outputs(linear, *split), &handled,
                             &prologue));
  ETGPU_CHECK(handled, "cuda: the GEMV refused a product with a norm it had accepted");
  return Status::ok();
}

}  // namespace etgpu::cuda
