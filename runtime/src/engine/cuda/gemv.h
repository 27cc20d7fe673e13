// The skinny-product fast path matmul.cpp tries before cuBLASLt (decode's linear layers).
#pragma once

#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

constexpr int64_t kGemvMaxRows = 8;

// Where a GEMV's output columns go: columns [begin[i], begin[i + 1]) are output i, a row-major
// [M, begin[i + 1] - begin[i]] tensor at data[i] (one output for a MatMul, one per sibling for a
// SplitLinear); begin[count] = N. bias, when set, is [N] of the product's dtype, added to the fp32
// sum before the one rounding. glu, when set (two outputs of N / 2 columns: gate and up), is an
// [M, N / 2] tensor that also receives act(gate) * up, rounded as the Glu kernel rounds.
struct GemvOutputs {
  void* data[kMaxSplitOutputs] = {};
  int64_t begin[kMaxSplitOutputs + 1] = {};
  int count = 0;
  const void* bias = nullptr;
  void* glu = nullptr;
  UnaryOp act = UnaryOp::Silu;
};

inline GemvOutputs single_output(void* out, int64_t n) {
  GemvOutputs o;
  o.data[0] = out;
  o.begin[1] = n;
  o.count = 1;
  return o;
}

// Runs out (+)= a @ w^T [+ bias] when `g` is one unbatched trans_b product with M in {1, 2, 3, 4, 8},
// K a multiple of one 16-byte vector and a, w 16-byte aligned; *handled says whether it did.
// g.accumulate adds what the outputs hold (a bias matmul.cpp wrote there).
Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, const GemvOutputs& out,
            bool* handled);

}  // namespace etgpu::cuda
