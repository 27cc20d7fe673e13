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

}  // namespace

Status matmul(const Context& c, const Node& n, const MatMulParams& p) {
  const TensorRef &a = n.in[0], &b = n.in[1], &out = n.out;
  if (out.numel() == 0) return Status::ok();
  const int64_t m = a.size(-2), k = a.size(-1), cols = out.size(-1);
  const int64_t batches = batch_count(out), a_batches = batch_count(a), b_batches = batch_count(b);
  const TensorRef* bias = p.has_bias ? &n.in[2] : nullptr;
  const bool bias_in_place = bias && bias->dtype == out.dtype;
  if (bias_in_place) {
    ETGPU_RETURN_IF_ERROR(broadcast_copy(c, *bias, out));
  } else if (k == 0) {
    // An empty inner dim still defines the product: zeros.
    ETGPU_CUDA_CHECK(cudaMemsetAsync(out.data, 0, out.nbytes(), c.stream));
  }
  if (k > 0) {
    const size_t element = dtype_size(out.dtype);
    GemmProblem g{out.dtype, p.trans_b, m, cols, k, 1, 0, 0, 0, bias_in_place};
    if (b_batches == 1 && a_batches == batches) {
      g.m = m * batches;  // A and C are contiguous [batches * M, K] / [batches * M, N]
      bool handled = false;
      ETGPU_RETURN_IF_ERROR(gemv(c, g, a.data, b.data, single_output(out.data, cols), &handled));
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

Status split_linear(const Context& c, const Node& n, const SplitLinearParams& p) {
  const TensorRef &x = n.in[0], &w = n.in[1];
  const int64_t k = x.size(-1), rows = k > 0 ? x.numel() / k : 0;
  if (rows == 0) return Status::ok();
  GemvOutputs outputs;
  outputs.count = static_cast<int>(split_linear_outputs(n, p));
  for (int i = 0; i < outputs.count; ++i) {
    outputs.data[i] = split_linear_output(n, i).data;
    outputs.begin[i + 1] = outputs.begin[i] + split_linear_output(n, i).size(-1);
  }
  outputs.bias = p.has_bias ? n.in[2].data : nullptr;
  outputs.glu = p.glu ? n.extra_out.back().data : nullptr;
  outputs.act = p.act;
  bool handled = false;
  if (k > 0) {
    const GemmProblem g{x.dtype, true, rows, w.size(0), k, 1, 0, 0, 0, false};
    ETGPU_RETURN_IF_ERROR(gemv(c, g, x.data, w.data, outputs, &handled));
  }
  if (handled) return Status::ok();
  for (int i = 0; i < outputs.count; ++i) {
    const Node segment = split_linear_segment(n, p, i, outputs.begin[i]);
    ETGPU_RETURN_IF_ERROR(matmul(c, segment, std::get<MatMulParams>(segment.params)));
  }
  return p.glu ? glu(c, split_linear_glu(n, p), GluParams{p.act}) : Status::ok();
}

}  // namespace etgpu::cuda
