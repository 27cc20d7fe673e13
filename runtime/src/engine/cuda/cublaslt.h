// A small wrapper around cuBLASLt: one handle, one fixed workspace, and a cache of matmul
// descriptors and the heuristic's algorithm per problem (shape, strides, alignment), so a
// repeated shape costs no heuristic query. Row-major C[M, N] = A[M, K] @ op(B) is issued as the
// column-major product C^T = op(B)^T A^T, which needs no transposed copies.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <tuple>

#include "engine/tensor.h"
#include "etgpu/status.h"

namespace etgpu::cuda {

struct GemmProblem {
  DType dtype;
  bool trans_b;        // B stored [N, K] (a linear weight) instead of [K, N]
  int64_t m, n, k;
  int32_t batch;       // strided batch count (1: a single product)
  int64_t stride_a, stride_b, stride_c;  // elements between batches; 0 broadcasts
  bool accumulate;     // C += A @ B (beta = 1) instead of C = A @ B
  int64_t ldc = 0;     // elements between C's rows; 0: n (a column block of a wider C otherwise)
};

class CublasLt {
 public:
  // Creates the handle and the workspace (the only device allocation this wrapper makes).
  static Result<CublasLt*> create(size_t workspace_bytes);
  ~CublasLt();
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;

  Status gemm(const GemmProblem& p, const void* a, const void* b, void* c, cudaStream_t stream);
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  CublasLt() = default;
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLAS's A (= our B), B (= our A), C
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int, bool, int64_t, int64_t, int64_t, int32_t, int64_t, int64_t, int64_t, bool,
                         int, int, int, bool, int64_t>;
  Result<Plan*> plan(const GemmProblem& p, int align_a, int align_b, int align_c);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool tf32_ = false;
  std::map<Key, Plan> plans_;
};

}  // namespace etgpu::cuda
