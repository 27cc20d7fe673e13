#include "engine/cuda/cublaslt.h"

#include <cstdlib>
#include <cstring>

#include "engine/cuda/cuda_common.h"

namespace etgpu::cuda {
namespace {

Status lt_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::ok();
  return err("cublasLt: ", what, " failed with status ", static_cast<int>(s));
}
#define ETGPU_LT_CHECK(call) ETGPU_RETURN_IF_ERROR(lt_status((call), #call))

cudaDataType_t cuda_type(DType d) {
  return d == DType::F16 ? CUDA_R_16F : d == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Largest power of two (up to 256) dividing an address: cuBLASLt picks kernels whose vector
// loads need that alignment, so it must be told the truth.
int alignment_of(uintptr_t address) {
  int a = 256;
  while (a > 1 && address % a != 0) a >>= 1;
  return a;
}

Status layout(cublasLtMatrixLayout_t* out, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
              int32_t batch, int64_t stride) {
  ETGPU_LT_CHECK(cublasLtMatrixLayoutCreate(out, type, rows, cols, ld));
  if (batch > 1) {
    ETGPU_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
    ETGPU_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                    sizeof(stride)));
  }
  return Status::ok();
}

}  // namespace

Result<CublasLt*> CublasLt::create(size_t workspace_bytes) {
  auto* lt = new CublasLt();
  const char* tf32 = std::getenv("ETGPU_CUDA_TF32");
  lt->tf32_ = tf32 && std::strcmp(tf32, "1") == 0;
  Status s = lt_status(cublasLtCreate(&lt->handle_), "cublasLtCreate");
  if (s.is_ok() && workspace_bytes) {
    s = cuda_status(cudaMalloc(&lt->workspace_, workspace_bytes), "cudaMalloc(cublasLt workspace)");
    if (s.is_ok()) lt->workspace_bytes_ = workspace_bytes;
  }
  if (!s.is_ok()) {
    delete lt;
    return s;
  }
  return lt;
}

CublasLt::~CublasLt() {
  for (auto& [key, p] : plans_) {
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Result<CublasLt::Plan*> CublasLt::plan(const GemmProblem& p, int align_a, int align_b, int align_c) {
  const Key key{static_cast<int>(p.dtype), p.trans_b, p.m, p.n, p.k, p.batch, p.stride_a, p.stride_b,
                p.stride_c, p.accumulate, align_a, align_b, align_c, tf32_, p.ldc};
  auto found = plans_.find(key);
  if (found != plans_.end()) return &found->second;
  Plan plan;
  const cudaDataType_t type = cuda_type(p.dtype);
  // fp32 stays plain fp32 (design tolerance 1e-4) unless TF32 is asked for; half types
  // accumulate in fp32 either way.
  const cublasComputeType_t compute =
      p.dtype == DType::F32 && tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  auto cleanup = [&plan]() {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
    if (plan.op) cublasLtMatmulDescDestroy(plan.op);
  };
  Status s = [&]() -> Status {
    ETGPU_LT_CHECK(cublasLtMatmulDescCreate(&plan.op, compute, CUDA_R_32F));
    const cublasOperation_t trans_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_n = CUBLAS_OP_N;
    ETGPU_LT_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    ETGPU_LT_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_n, sizeof(trans_n)));
    // cuBLAS's A is our B: stored [K, N] row-major = N x K column-major (ld N), or with trans_b
    // stored [N, K] = K x N column-major (ld K) and transposed by the op.
    if (p.trans_b) ETGPU_RETURN_IF_ERROR(layout(&plan.a, type, p.k, p.n, p.k, p.batch, p.stride_b));
    else ETGPU_RETURN_IF_ERROR(layout(&plan.a, type, p.n, p.k, p.n, p.batch, p.stride_b));
    // cuBLAS's B is our A: [M, K] row-major = K x M column-major (ld K).
    ETGPU_RETURN_IF_ERROR(layout(&plan.b, type, p.k, p.m, p.k, p.batch, p.stride_a));
    // C = D: [M, N] row-major = N x M column-major (ld N, or ldc).
    ETGPU_RETURN_IF_ERROR(layout(&plan.c, type, p.n, p.m, p.ldc ? p.ldc : p.n, p.batch, p.stride_c));

    cublasLtMatmulPreference_t pref = nullptr;
    ETGPU_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = workspace_bytes_;
    uint32_t aa = static_cast<uint32_t>(align_b), ab = static_cast<uint32_t>(align_a), ac = static_cast<uint32_t>(align_c);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.a, plan.b, plan.c, plan.c,
                                                             pref, 1, &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    ETGPU_RETURN_IF_ERROR(lt_status(hs, "cublasLtMatmulAlgoGetHeuristic"));
    ETGPU_CHECK(returned > 0, "cublasLt: no algorithm for ", dtype_name(p.dtype), " [", p.m, ", ", p.k,
                "] x [", p.k, ", ", p.n, "] batch ", p.batch);
    plan.algo = result.algo;
    return Status::ok();
  }();
  if (!s.is_ok()) {
    cleanup();
    return s;
  }
  return &(plans_[key] = plan);
}

Status CublasLt::gemm(const GemmProblem& p, const void* a, const void* b, void* c, cudaStream_t stream) {
  const size_t element = dtype_size(p.dtype);
  // The alignment every batch's pointer keeps: the base's, limited by the batch stride's.
  auto align = [element](const void* ptr, int64_t stride, int32_t batch) {
    int al = alignment_of(reinterpret_cast<uintptr_t>(ptr));
    if (batch > 1 && stride) al = std::min(al, alignment_of(static_cast<uintptr_t>(stride) * element));
    return al;
  };
  auto found = plan(p, align(a, p.stride_a, p.batch), align(b, p.stride_b, p.batch), align(c, p.stride_c, p.batch));
  ETGPU_RETURN_IF_ERROR(found.status());
  Plan* pl = found.value();
  const float alpha = 1.f, beta = p.accumulate ? 1.f : 0.f;
  ETGPU_LT_CHECK(cublasLtMatmul(handle_, pl->op, &alpha, b, pl->a, a, pl->b, &beta, c, pl->c, c, pl->c, &pl->algo,
                                workspace_, workspace_bytes_, stream));
  return Status::ok();
}

}  // namespace etgpu::cuda
