// The skinny-product fast path matmul.cpp tries before cuBLASLt (decode's linear layers).
#pragma once

#include "engine/cuda/cublaslt.h"
#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {

constexpr int64_t kGemvMaxRows = 8;

// Runs out (+)= a @ w^T when `g` is one unbatched trans_b product with M in {1, 2, 3, 4, 8},
// K a multiple of one 16-byte vector and a, w 16-byte aligned; *handled says whether it did.
Status gemv(const Context& c, const GemmProblem& g, const void* a, const void* w, void* out, bool* handled);

}  // namespace etgpu::cuda
