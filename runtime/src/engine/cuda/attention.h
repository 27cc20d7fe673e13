// The attention family's internal entry points: attention.cu's sdpa() hands decode-shaped
// problems to attention_decode.cu, and both reduce their key splits with one merge kernel.
#pragma once

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/index_math.h"

namespace etgpu::cuda {

// Query rows (L) up to which the decode kernel takes a problem.
constexpr int64_t kDecodeMaxQueries = 8;
constexpr float kLog2e = 1.4426950408889634f;  // device code working in the exp2 domain

// An Sdpa node's optional mask as every attention kernel reads it: element strides over
// [B, H, L, S] (0 broadcasts); data is null when the node has none.
struct SdpaMask {
  const void* data = nullptr;
  DType dtype = DType::Bool;
  int64_t strides[4] = {};
};
SdpaMask sdpa_mask(const Node& n, const SdpaParams& p);

// Where each output row of an Sdpa node is stored. Every kernel computes rows in [B, H, L] order
// (row (b * H + h) * L + l) and stores row r at out_rows.row(r) * Ev: the row itself, or with
// out_seq_major its place in out [B, L, H, Ev]. I: uint32_t where B * H * L < 2^31 is checked.
template <class I>
SeqMajorRows<I> sdpa_out_rows(const Node& n, const SdpaParams& p) {
  return SeqMajorRows<I>(p.out_seq_major, n.in[0].shape[1], n.in[0].shape[2]);
}

// The softmax scale: the node's, or 1/sqrt(E) when it gives none (0); and that scale times
// log2(e), for the kernels that score in the exp2 domain.
double sdpa_scale(const SdpaParams& p, int64_t head_dim);
float sdpa_scale_log2(const SdpaParams& p, int64_t head_dim);

// Runs the decode kernel when the problem fits it (L <= kDecodeMaxQueries, 16-byte aligned
// operands, head dims a multiple of one 16-byte vector); *handled says whether it did.
Status sdpa_decode(const Context& c, const Node& n, const SdpaParams& p, bool* handled);

// Runs the tensor-core kernel for fp16/bf16 problems with more than kDecodeMaxQueries query rows
// and E = Ev in {64, 128}; *handled says whether it did. The init raises its shared-memory limit.
Status sdpa_prefill(const Context& c, const Node& n, const SdpaParams& p, bool* handled);
Status sdpa_prefill_init();

// partial: [rows][splits][ev + 2] (unnormalised output, max, sum) -> out rows of ev, row r stored
// at out_rows.row(r).
Status sdpa_merge(const Context& c, const float* partial, const TensorRef& out, const SeqMajorRows<int64_t>& out_rows,
                  int64_t rows, int splits, int64_t ev);

}  // namespace etgpu::cuda
