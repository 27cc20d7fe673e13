// Host-side pieces shared by the CUDA engine's files: error checking that turns every CUDA
// failure into a Status (never abort), the per-engine context kernels launch on, and one entry
// point per op family (each .cu file in this folder implements its family).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/ops.h"
#include "etgpu/status.h"

namespace etgpu::cuda {

inline Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return err("cuda: ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

#define ETGPU_CUDA_CHECK(call) ETGPU_RETURN_IF_ERROR(::etgpu::cuda::cuda_status((call), #call))
// After every kernel launch: a bad configuration shows up here, not at the next synchronize.
#define ETGPU_CUDA_LAUNCH_CHECK(what) \
  ETGPU_RETURN_IF_ERROR(::etgpu::cuda::cuda_status(cudaGetLastError(), what))

class CublasLt;

// What a kernel needs from the engine. All buffers here are allocated when the engine is
// created; kernels never allocate.
struct Context {
  cudaStream_t stream = nullptr;
  CublasLt* blas = nullptr;
  // A device word kernels set when they meet a bad index (a payload or input may hold one); the
  // engine reports it at the next synchronize, since a kernel cannot return an error itself.
  int* error_flag = nullptr;
  // Scratch for the split-KV attention path (partial maxima, sums and outputs).
  float* attn_scratch = nullptr;
  size_t attn_scratch_floats = 0;
  // Zeroed once; the decode attention kernel counts finished splits here so its last block can
  // merge them, and that block sets its counter back to zero.
  unsigned* attn_counters = nullptr;
  int attn_counter_count = 0;
  // Scratch for quantized linears that do not take the GEMV: dequantized weight chunks for
  // cuBLASLt and act-quantized x (quant.cu splits a problem into chunks that fit).
  void* quant_scratch = nullptr;
  size_t quant_scratch_bytes = 0;
  int num_sms = 0;
};

constexpr size_t kQuantScratchBytes = 64u << 20;

// Error codes kernels write into Context::error_flag (first writer wins).
enum KernelError : int { kNoError = 0, kIndexOutOfRange = 1 };

Status unary(const Context& c, const Node& n, const UnaryParams& p);
Status binary(const Context& c, const Node& n, const BinaryParams& p);
Status where(const Context& c, const Node& n, const WhereParams& p);
Status cast(const Context& c, const Node& n, const CastParams& p);
Status fill(const Context& c, const Node& n, const FillParams& p);
Status arange(const Context& c, const Node& n, const ArangeParams& p);
Status matmul(const Context& c, const Node& n, const MatMulParams& p);
Status split_linear(const Context& c, const Node& n, const SplitLinearParams& p);
Status reduce(const Context& c, const Node& n, const ReduceParams& p);
Status softmax(const Context& c, const Node& n, const SoftmaxParams& p);
Status layer_norm(const Context& c, const Node& n, const LayerNormParams& p);
Status rms_norm(const Context& c, const Node& n, const RmsNormParams& p);
Status add_rms_norm(const Context& c, const Node& n, const AddRmsNormParams& p);
Status permute(const Context& c, const Node& n, const PermuteParams& p);
Status expand(const Context& c, const Node& n, const ExpandParams& p);
Status slice(const Context& c, const Node& n, const SliceParams& p);
Status select(const Context& c, const Node& n, const SelectParams& p);
Status cat(const Context& c, const Node& n, const CatParams& p);
Status copy_into(const Context& c, const Node& n, const CopyIntoParams& p);
Status index_select(const Context& c, const Node& n, const IndexSelectParams& p);
Status gather(const Context& c, const Node& n, const GatherParams& p);
Status sdpa(const Context& c, const Node& n, const SdpaParams& p);
Status index_copy(const Context& c, const Node& n, const IndexCopyParams& p);
Status quant_linear(const Context& c, const Node& n, const QuantLinearParams& p);
// quant_linear forced onto one path, whatever it would pick: dequantize to scratch + cuBLASLt, or
// the GEMV in passes of 8 rows (an error where it does not take the layout). For benchmarks.
Status quant_linear_dequant(const Context& c, const Node& n, const QuantLinearParams& p);
Status quant_linear_gemv(const Context& c, const Node& n, const QuantLinearParams& p);
Status quant_embedding(const Context& c, const Node& n, const QuantEmbeddingParams& p);
Status rope(const Context& c, const Node& n, const RopeParams& p);
Status glu(const Context& c, const Node& n, const GluParams& p);

// Used by matmul for its bias: out = expand(bias) before the GEMM accumulates into it.
Status broadcast_copy(const Context& c, const TensorRef& x, const TensorRef& out);
// One-time kernel attribute setup (large shared memory), called when the engine is created.
Status attention_init();

// Whether launch_overlapped (device.cuh) asks for programmatic dependent launch. ETGPU_PDL=0
// launches without it (the kernels' waits then return at once): a switch to measure what the
// overlap is worth, or to rule it out when chasing a race. Read once, in cuda_engine.cpp.
bool overlap_enabled();

// Runs nodes[0..] as one launch when they are a decode layer's rotations and cache write: Rope,
// Rope (independent of the first, same kernel form), then optionally an independent IndexCopy of
// 16-byte units. *ran says how many nodes ran (or, when the launch fails, were to run): 0 when
// they do not fit (run them one by one), 2 or 3.
Status rope_group(const Context& c, const Node* nodes, size_t count, size_t* ran);
// Runs nodes[0..] as one GEMV launch when they are quantized linears that read the same x (a
// layer's q/k/v, an MLP's gate/up): up to 3, the same format, group, zero domain and parameter
// dtype, each one the GEMV takes, no output overlapping x or another's. *ran as for rope_group
// (0, 2 or 3).
Status quant_linear_group(const Context& c, const Node* nodes, size_t count, size_t* ran);

}  // namespace etgpu::cuda
