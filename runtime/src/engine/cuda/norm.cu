// Row-wise normalisations: softmax / log-softmax along any dim, layer norm over the last
// `normalized_ndim` dims (optional weight and bias), RMS norm over the last dim (optional weight,
// `unit_offset` multiplies by 1 + weight as Gemma does), also fused with the residual add that
// feeds it (AddRmsNorm: the same kernels, which then form and write the sum first). Statistics
// accumulate in fp32.
//
// Softmax views x as [outer, n, inner]. With inner == 1 (the usual last-dim case) one block owns
// one row and reduces it with the whole block; otherwise each thread owns one (outer, inner)
// column and walks n (neighbouring threads read neighbouring elements: coalesced).
#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

int row_threads(int64_t n) { return n <= 128 ? 32 : n <= 1024 ? 128 : n <= 4096 ? 256 : 512; }
unsigned row_grid(int64_t rows) { return static_cast<unsigned>(rows < 65535 * 8 ? rows : 65535 * 8); }

struct SoftmaxArgs {
  const void* x;
  void* out;
  DType x_dtype, out_dtype;
  int64_t outer, n, inner;
  bool log;
};

__global__ void softmax_row_kernel(SoftmaxArgs a) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < a.outer; row += gridDim.x) {
    const int64_t base = row * a.n;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) m = fmaxf(m, load_as<float>(a.x, a.x_dtype, base + j));
    m = block_reduce(m, MaxOp(), scratch);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) s += expf(load_as<float>(a.x, a.x_dtype, base + j) - m);
    s = block_reduce(s, SumOp(), scratch);
    const float log_s = logf(s), inv_s = 1.f / s;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      const float v = load_as<float>(a.x, a.x_dtype, base + j) - m;
      store_from<float>(a.out, a.out_dtype, base + j, a.log ? v - log_s : expf(v) * inv_s);
    }
  }
}

__global__ void softmax_column_kernel(SoftmaxArgs a) {
  const int64_t columns = a.outer * a.inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < columns; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (c / a.inner) * a.n * a.inner + c % a.inner;
    float m = -INFINITY, s = 0.f;
    for (int64_t j = 0; j < a.n; ++j) m = fmaxf(m, load_as<float>(a.x, a.x_dtype, base + j * a.inner));
    for (int64_t j = 0; j < a.n; ++j) s += expf(load_as<float>(a.x, a.x_dtype, base + j * a.inner) - m);
    const float log_s = logf(s), inv_s = 1.f / s;
    for (int64_t j = 0; j < a.n; ++j) {
      const float v = load_as<float>(a.x, a.x_dtype, base + j * a.inner) - m;
      store_from<float>(a.out, a.out_dtype, base + j * a.inner, a.log ? v - log_s : expf(v) * inv_s);
    }
  }
}

struct NormArgs {
  const void* x;
  const void* weight;  // null when absent
  const void* bias;    // null when absent
  void* out;
  DType x_dtype, w_dtype, b_dtype, out_dtype;
  int64_t rows, n;
  float eps;
  bool unit_offset;
  bool round_normalized;  // round x * rstd to x's dtype before the weight (Llama's order)
  // AddRmsNorm: the norm's input is sum = x + residual (x's dtype, x's shape), written to `sum`.
  const void* residual = nullptr;
  void* sum = nullptr;
};

__global__ void layer_norm_kernel(NormArgs a) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const int64_t base = row * a.n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) s += load_as<float>(a.x, a.x_dtype, base + j);
    const float mean = block_reduce(s, SumOp(), scratch) / static_cast<float>(a.n);
    // Two passes (mean, then squared deviations) instead of E[x^2] - mean^2: no cancellation.
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      const float d = load_as<float>(a.x, a.x_dtype, base + j) - mean;
      q += d * d;
    }
    const float rstd = rms_rstd(block_reduce(q, SumOp(), scratch), a.n, a.eps);
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      float v = (load_as<float>(a.x, a.x_dtype, base + j) - mean) * rstd;
      if (a.weight) v *= load_as<float>(a.weight, a.w_dtype, j);
      if (a.bias) v += load_as<float>(a.bias, a.b_dtype, j);
      store_from<float>(a.out, a.out_dtype, base + j, v);
    }
  }
}

// Element i of the norm's input in the first pass. With a residual that is x + residual rounded
// to x's dtype (what the separate add would store), and it is stored to `sum` on the way.
__device__ __forceinline__ float rms_norm_input(const NormArgs& a, int64_t i) {
  float v = load_as<float>(a.x, a.x_dtype, i);
  if (!a.residual) return v;
  v = round_to_dtype(v + load_as<float>(a.residual, a.x_dtype, i), a.x_dtype);
  store_from<float>(a.sum, a.x_dtype, i, v);
  return v;
}

__global__ void rms_norm_kernel(NormArgs a) {
  __shared__ float scratch[32];
  // The second pass re-reads the sum, not x: each thread reads back only the elements it stored
  // itself in the first pass (same j), so no barrier is needed for it.
  const void* input = a.residual ? a.sum : a.x;
  for (int64_t row = blockIdx.x; row < a.rows; row += gridDim.x) {
    const int64_t base = row * a.n;
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      const float v = rms_norm_input(a, base + j);
      q += v * v;
    }
    const float rstd = rms_rstd(block_reduce(q, SumOp(), scratch), a.n, a.eps);
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      const float w = a.weight ? load_as<float>(a.weight, a.w_dtype, j) : 0.f;
      const float v = rms_normalize(load_as<float>(input, a.x_dtype, base + j), rstd, a.x_dtype, a.round_normalized,
                                    a.weight != nullptr, w, a.unit_offset);
      store_from<float>(a.out, a.out_dtype, base + j, v);
    }
  }
}

// RMS norm of rows that fit one 16-byte vector per thread (n <= 1024 vectors) with x, weight and
// out of one dtype: one block per row, the row stays in registers between the statistic and the
// output (one read of x instead of two), 16-byte loads and stores. A decode step's norms are a
// handful of short rows, where the generic kernel's two scalar passes are all latency.
// kAdd (AddRmsNorm): the thread's vector of x plus the residual's, rounded to T as the separate
// add rounds, is the norm's input and is stored to `sum` in the same pass.
template <class T, bool kAdd>
__global__ void rms_norm_vec_kernel(NormArgs a) {
  constexpr int kVec = 16 / sizeof(T);
  __shared__ float scratch[32];
  begin_dependent_grid();
  const int64_t offset = int64_t(blockIdx.x) * a.n + threadIdx.x * kVec;
  const bool active = threadIdx.x * kVec < a.n;
  float v[kVec] = {}, w[kVec] = {};
  if (active) {
    // The weight is loaded with x, before the reduction: its memory latency overlaps x's
    // instead of following the block's barriers.
    if (a.weight) load_vec(static_cast<const T*>(a.weight) + threadIdx.x * kVec, w);
    load_vec(static_cast<const T*>(a.x) + offset, v);
    if (kAdd) {
      float r[kVec];
      load_vec(static_cast<const T*>(a.residual) + offset, r);
#pragma unroll
      for (int t = 0; t < kVec; ++t) v[t] = round_to_dtype(v[t] + r[t], a.x_dtype);
      store_vec(static_cast<T*>(a.sum) + offset, v);
    }
  }
  float q = 0.f;
#pragma unroll
  for (int t = 0; t < kVec; ++t) q += v[t] * v[t];
  const float rstd = rms_rstd(block_reduce(q, SumOp(), scratch), a.n, a.eps);
  if (!active) return;
#pragma unroll
  for (int t = 0; t < kVec; ++t) {
    v[t] = rms_normalize(v[t], rstd, a.x_dtype, a.round_normalized, a.weight != nullptr, w[t], a.unit_offset);
  }
  store_vec(static_cast<T*>(a.out) + offset, v);
}

template <bool kAdd>
void launch_rms_norm_vec(const Context& c, const NormArgs& a, unsigned grid, int threads) {
  switch (a.x_dtype) {
    case DType::F32: launch_overlapped(rms_norm_vec_kernel<float, kAdd>, grid, threads, 0, c.stream, a); break;
    case DType::F16: launch_overlapped(rms_norm_vec_kernel<__half, kAdd>, grid, threads, 0, c.stream, a); break;
    default: launch_overlapped(rms_norm_vec_kernel<__nv_bfloat16, kAdd>, grid, threads, 0, c.stream, a); break;
  }
}

// Launches the vector kernel when the row, dtypes and alignment allow; *launched says if it did.
void rms_norm_vec(const Context& c, const NormArgs& a, bool* launched) {
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(a.x_dtype));
  *launched = is_floating(a.x_dtype) && a.out_dtype == a.x_dtype && (!a.weight || a.w_dtype == a.x_dtype) &&
              a.n % vec == 0 && a.n / vec <= 1024 && a.rows <= INT32_MAX && aligned16(a.x) &&
              aligned16(a.out) && (!a.weight || aligned16(a.weight)) &&
              (!a.residual || (aligned16(a.residual) && aligned16(a.sum)));
  if (!*launched) return;
  const int threads = static_cast<int>((a.n / vec + 31) / 32 * 32);
  const unsigned grid = static_cast<unsigned>(a.rows);
  if (a.residual) launch_rms_norm_vec<true>(c, a, grid, threads);
  else launch_rms_norm_vec<false>(c, a, grid, threads);
}

// RmsNorm and AddRmsNorm (residual and sum non-null): x is n.in[0], the output n.out.
Status launch_rms_norm(const Context& c, const Node& n, const RmsNormParams& p, const TensorRef* w,
                       const TensorRef* residual, const TensorRef* sum) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t inner = x.size(-1);
  if (x.numel() == 0 || inner == 0) return Status::ok();
  NormArgs a{x.data, w ? w->data : nullptr, nullptr, out.data, x.dtype, w ? w->dtype : x.dtype, x.dtype,
             out.dtype, x.numel() / inner, inner, static_cast<float>(p.eps), p.unit_offset,
             p.round_normalized, residual ? residual->data : nullptr, sum ? sum->data : nullptr};
  bool launched = false;
  rms_norm_vec(c, a, &launched);
  if (!launched) rms_norm_kernel<<<row_grid(a.rows), row_threads(inner), 0, c.stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK(residual ? "add_rms_norm kernel" : "rms_norm kernel");
  return Status::ok();
}

}  // namespace

Status softmax(const Context& c, const Node& n, const SoftmaxParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  if (x.numel() == 0) return Status::ok();
  const int dim = x.rank == 0 ? 0 : (p.dim < 0 ? p.dim + x.rank : p.dim);
  SoftmaxArgs a{x.data, out.data, x.dtype, out.dtype, 1, x.rank == 0 ? 1 : x.shape[dim], 1, p.log};
  for (int d = 0; d < dim; ++d) a.outer *= x.shape[d];
  for (int d = dim + 1; d < x.rank; ++d) a.inner *= x.shape[d];
  if (a.inner == 1) {
    softmax_row_kernel<<<row_grid(a.outer), row_threads(a.n), 0, c.stream>>>(a);
  } else {
    softmax_column_kernel<<<grid_for(a.outer * a.inner), kThreads, 0, c.stream>>>(a);
  }
  ETGPU_CUDA_LAUNCH_CHECK("softmax kernel");
  return Status::ok();
}

Status layer_norm(const Context& c, const Node& n, const LayerNormParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  if (x.numel() == 0) return Status::ok();
  int64_t inner = 1;
  for (int d = x.rank - p.normalized_ndim; d < x.rank; ++d) inner *= x.shape[d];
  if (inner == 0) return Status::ok();
  size_t next = 1;
  const TensorRef* w = p.has_weight ? &n.in[next++] : nullptr;
  const TensorRef* b = p.has_bias ? &n.in[next++] : nullptr;
  NormArgs a{x.data, w ? w->data : nullptr, b ? b->data : nullptr, out.data, x.dtype,
             w ? w->dtype : x.dtype, b ? b->dtype : x.dtype, out.dtype, x.numel() / inner, inner,
             static_cast<float>(p.eps), false, false};
  layer_norm_kernel<<<row_grid(a.rows), row_threads(inner), 0, c.stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("layer_norm kernel");
  return Status::ok();
}

Status rms_norm(const Context& c, const Node& n, const RmsNormParams& p) {
  return launch_rms_norm(c, n, p, p.has_weight ? &n.in[1] : nullptr, nullptr, nullptr);
}

Status add_rms_norm(const Context& c, const Node& n, const AddRmsNormParams& p) {
  return launch_rms_norm(c, n, p.norm, p.norm.has_weight ? &n.in[2] : nullptr, &n.in[1], &n.extra_out[0]);
}

}  // namespace etgpu::cuda
