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

// An RMSNorm (RmsNorm, or AddRmsNorm with a residual) whose output `out` is the product's a, run
// inside the GEMV instead of as a kernel of its own (a decode step's norm and the linear after it:
// one launch less). Every block computes a's rows from x (+ residual) into shared memory, as the
// norm kernel does (rounding included); block 0 also stores them to `out` and the sum to `sum`, so
// every later reader sees what the norm kernel would have written. All of the product's dtype;
// residual, sum and weight null when absent.
struct GemvNorm {
  const void* x = nullptr;
  const void* residual = nullptr;
  void* sum = nullptr;
  const void* weight = nullptr;
  void* out = nullptr;
  float eps = 0.f;
  bool unit_offset = false, round_normalized = false;
};

// Longest row a GEMV's norm prologue normalizes. The weight's row and a's M rows sit in shared
// memory, which with the kernel's own arrays must stay within the 48 KiB a launch gets without
// opting in (bf16 M = 4 rows of 4096, fp32 M = 4 rows of 2048 fit; longer rows keep two launches).
constexpr int64_t kGemvNormMaxK = 8192;
constexpr size_t kGemvNormMaxSharedBytes = 44u << 10;

// Whether gemv() runs this product: one unbatched trans_b product with M in {1, 2, 3, 4, 8}, K a
// multiple of one 16-byte vector and a, w 16-byte aligned; with `norm` also M <= 4, K within the
// prologue's limits and the norm's pointers 16-byte aligned. Asks nothing of the device, so a
// caller can decide before it launches anything.
bool gemv_takes(const GemmProblem& g, const void* a, const void* w, const GemvNorm* norm = nullptr);

// Runs out (+)= a @ w^T [+ bias] when gemv_takes(g, a, w, norm); *handled says whether it did.
// g.accumulate adds what the outputs hold (a bias matmul.cpp wrote there). With `norm` (norm->out
// == a), a is computed by the norm inside the kernel first.
Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, const GemvOutputs& out,
            bool* handled, const GemvNorm* norm = nullptr);

}  // namespace etgpu::cuda
