// Batched matmul with broadcast batch dims and optional bias: operands are widened to fp32 rows,
// accumulated in fp32 (as cuBLAS does for half types), rounded once on store.
#include <thread>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

void to_float(const TensorRef& t, int64_t offset, int64_t count, float* dst) {
  for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(load(t.data, t.dtype, offset + i));
}

}  // namespace

Status matmul(const Node& n, const MatMulParams& p) {
  const TensorRef &a = n.in[0], &b = n.in[1], &out = n.out;
  const int64_t m = a.size(-2), k = a.size(-1), cols = out.size(-1);
  const int64_t batches = out.numel() / std::max<int64_t>(m * cols, 1);
  if (out.numel() == 0) return Status::ok();
  std::vector<float> bias_row;
  std::vector<std::vector<int64_t>> bias_strides;
  std::vector<float> bt(static_cast<size_t>(k * cols));  // b as [N, K] rows for contiguous dots
  std::vector<float> arow(static_cast<size_t>(k));
  int64_t cached_b = -1;
  const TensorRef* bias = p.has_bias ? &n.in[2] : nullptr;
  std::vector<int64_t> bias_stride = bias ? broadcast_strides(*bias, out) : std::vector<int64_t>();
  for (int64_t batch = 0; batch < batches; ++batch) {
    const int64_t b_index = matmul_batch_offset(b, out, batch);
    if (b_index != cached_b) {
      std::vector<float> raw(static_cast<size_t>(k * cols));
      to_float(b, b_index * k * cols, k * cols, raw.data());
      for (int64_t r = 0; r < cols; ++r)
        for (int64_t c = 0; c < k; ++c)
          bt[r * k + c] = p.trans_b ? raw[r * k + c] : raw[c * cols + r];
      cached_b = b_index;
    }
    const int64_t a_index = matmul_batch_offset(a, out, batch);
    for (int64_t i = 0; i < m; ++i) {
      to_float(a, (a_index * m + i) * k, k, arow.data());
      const int64_t out_row = (batch * m + i) * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const float* brow = bt.data() + j * k;  // data(), not [], so K == 0 (empty bt) stays defined
        float acc = 0.f;
        for (int64_t c = 0; c < k; ++c) acc += arow[c] * brow[c];
        double value = acc;
        if (bias) {
          // Bias offset for output element (batch, i, j) under broadcasting.
          int64_t linear = out_row + j, offset = 0;
          for (int d = out.rank - 1; d >= 0; --d) {
            offset += (linear % out.shape[d]) * bias_stride[d];
            linear /= out.shape[d];
          }
          value += load(bias->data, bias->dtype, offset);
        }
        store(out.data, out.dtype, out_row + j, value);
      }
    }
  }
  return Status::ok();
}

// The reference computes each output as its own MatMul over its rows of the weight, then the Glu
// if there is one: the same fp32 sums and roundings as the separate instructions it replaces.
Status split_linear(const Node& n, const SplitLinearParams& p) {
  int64_t row = 0;
  for (size_t i = 0; i < split_linear_outputs(n, p); ++i) {
    const Node segment = split_linear_segment(n, p, i, row);
    ETGPU_RETURN_IF_ERROR(matmul(segment, std::get<MatMulParams>(segment.params)));
    row += segment.out.size(-1);
  }
  return p.glu ? glu(split_linear_glu(n, p), GluParams{p.act}) : Status::ok();
}

}  // namespace etgpu::cpu
