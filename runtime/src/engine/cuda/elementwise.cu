// Elementwise families on the GPU: unary, binary (broadcasting, mixed dtypes, tensor or scalar
// operand), where, cast, fill, arange. The math mirrors the CPU reference (cpu/elementwise.cpp):
// float results compute in float, or in double when an integer operand could lose bits in float;
// integer results compute in int64.
#include <cmath>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

template <class T>
__device__ __forceinline__ T apply_unary(UnaryOp op, T x, T alpha, T beta) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabs(x);
    case UnaryOp::Sqrt: return sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / sqrt(x);
    case UnaryOp::Exp: return exp(x);
    case UnaryOp::Log: return log(x);
    case UnaryOp::Relu: return x > T(0) ? x : (isnan(x) ? x : T(0));
    case UnaryOp::GeluErf:
    case UnaryOp::GeluTanh:
    case UnaryOp::Silu: return gate_activation(op, x);
    case UnaryOp::Sigmoid: return T(1) / (T(1) + exp(-x));
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::LogicalNot: return x == T(0) ? T(1) : T(0);
    case UnaryOp::Sin: return sin(x);
    case UnaryOp::Cos: return cos(x);
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::Erf: return erf(x);
    case UnaryOp::Floor: return floor(x);
    case UnaryOp::Ceil: return ceil(x);
    case UnaryOp::Round: return rint(x);  // half to even, as torch.round
    case UnaryOp::Clamp: return isnan(x) ? x : fmin(fmax(x, alpha), beta);
    case UnaryOp::PowScalar: return pow(x, alpha);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Log1p: return log1p(x);
    case UnaryOp::Expm1: return expm1(x);
    case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Trunc: return trunc(x);
    case UnaryOp::BitwiseNot: return T(~static_cast<int64_t>(x));
    case UnaryOp::IsNan: return isnan(x) ? T(1) : T(0);
    case UnaryOp::Softplus: return x * alpha > beta ? x : log1p(exp(x * alpha)) / alpha;
    case UnaryOp::Elu: return x > T(0) ? x : alpha * expm1(x);
    case UnaryOp::LeakyRelu: return x > T(0) ? x : alpha * x;
    case UnaryOp::HardSigmoid: return fmin(fmax(x / T(6) + T(0.5), T(0)), T(1));
    case UnaryOp::HardSwish: return x * fmin(fmax(x + T(3), T(0)), T(6)) / T(6);
    default: return T(NAN);
  }
}

template <class T>
__device__ __forceinline__ T apply_binary_float(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return pow(a, b);
    case BinaryOp::Maximum: return (isnan(a) || isnan(b)) ? a + b : fmax(a, b);
    case BinaryOp::Minimum: return (isnan(a) || isnan(b)) ? a + b : fmin(a, b);
    case BinaryOp::Eq: return a == b;
    case BinaryOp::Ne: return a != b;
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    case BinaryOp::Ge: return a >= b;
    case BinaryOp::LogicalAnd: return (a != T(0)) && (b != T(0));
    case BinaryOp::LogicalOr: return (a != T(0)) || (b != T(0));
    case BinaryOp::FloorDiv: return floor(a / b);
    case BinaryOp::Remainder: {
      const T r = fmod(a, b);
      return (r != T(0) && ((r < T(0)) != (b < T(0)))) ? r + b : r;
    }
    case BinaryOp::Atan2: return atan2(a, b);
    case BinaryOp::TruncDiv: return trunc(a / b);
    default: return T(NAN);
  }
}

__device__ __forceinline__ int64_t floor_div_int(int64_t a, int64_t b) {
  if (b == 0) return 0;  // torch raises; a kernel must not trap
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

__device__ __forceinline__ int64_t apply_binary_int(BinaryOp op, int64_t a, int64_t b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Maximum: return a > b ? a : b;
    case BinaryOp::Minimum: return a < b ? a : b;
    case BinaryOp::FloorDiv: return floor_div_int(a, b);
    case BinaryOp::TruncDiv: return b == 0 ? 0 : a / b;
    case BinaryOp::Remainder: return b == 0 ? 0 : a - floor_div_int(a, b) * b;
    case BinaryOp::BitwiseAnd: return a & b;
    case BinaryOp::BitwiseOr: return a | b;
    case BinaryOp::BitwiseXor: return a ^ b;
    case BinaryOp::Eq: return a == b;
    case BinaryOp::Ne: return a != b;
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    case BinaryOp::Ge: return a >= b;
    case BinaryOp::LogicalAnd: return (a != 0) && (b != 0);
    case BinaryOp::LogicalOr: return (a != 0) || (b != 0);
    case BinaryOp::Pow: {
      int64_t r = 1;
      for (int64_t i = 0; i < b; ++i) r *= a;  // b is small in practice; negative b gives 1
      return r;
    }
    default: return 0;
  }
}

struct UnaryArgs {
  const void* x;
  DType x_dtype;
  void* out;
  DType out_dtype;
  int64_t count;
  UnaryOp op;
  double alpha, beta;
  bool integer;  // Neg / Abs / BitwiseNot on integers stay in int64
};

template <class T>
__global__ void unary_kernel(UnaryArgs a) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.count; i += int64_t(gridDim.x) * blockDim.x) {
    if (a.integer) {
      const int64_t v = load_as<int64_t>(a.x, a.x_dtype, i);
      const int64_t r = a.op == UnaryOp::Neg ? -v : a.op == UnaryOp::Abs ? (v < 0 ? -v : v)
                        : (a.x_dtype == DType::Bool ? !v : ~v);
      store_from<int64_t>(a.out, a.out_dtype, i, r);
    } else {
      const T r = apply_unary<T>(a.op, load_as<T>(a.x, a.x_dtype, i), T(a.alpha), T(a.beta));
      store_from<T>(a.out, a.out_dtype, i, r);
    }
  }
}

struct BinaryArgs {
  Indexer<2> ix;
  const void* a;
  const void* b;  // null: the scalar operand
  DType a_dtype, b_dtype;
  void* out;
  DType out_dtype;
  int64_t count;
  BinaryOp op;
  double scalar, alpha;
  bool scalar_first, comparison;
};

template <class T>
__global__ void binary_float_kernel(BinaryArgs a) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    a.ix.offsets(i, off);
    T lhs = load_as<T>(a.a, a.a_dtype, off[0]);
    T rhs = a.b ? load_as<T>(a.b, a.b_dtype, off[1]) : T(a.scalar);
    if (!a.b && a.scalar_first) { const T t = lhs; lhs = rhs; rhs = t; }
    if (a.op == BinaryOp::Add || a.op == BinaryOp::Sub) rhs *= T(a.alpha);
    store_from<T>(a.out, a.out_dtype, i, apply_binary_float<T>(a.op, lhs, rhs));
  }
}

__global__ void binary_int_kernel(BinaryArgs a) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    a.ix.offsets(i, off);
    int64_t lhs = load_as<int64_t>(a.a, a.a_dtype, off[0]);
    int64_t rhs = a.b ? load_as<int64_t>(a.b, a.b_dtype, off[1]) : static_cast<int64_t>(a.scalar);
    if (!a.b && a.scalar_first) { const int64_t t = lhs; lhs = rhs; rhs = t; }
    if (a.op == BinaryOp::Add || a.op == BinaryOp::Sub) rhs *= static_cast<int64_t>(a.alpha);
    const int64_t r = apply_binary_int(a.op, lhs, rhs);
    // Comparisons store 0/1 (into bool or a float output alike).
    store_from<int64_t>(a.out, a.out_dtype, i, a.comparison ? (r != 0) : r);
  }
}

struct WhereArgs {
  Indexer<3> ix;
  const uint8_t* cond;
  const void* a;
  const void* b;
  DType a_dtype, b_dtype;
  void* out;
  DType out_dtype;
  int64_t count;
};

template <class T>
__global__ void where_kernel(WhereArgs w) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < w.count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    w.ix.offsets(i, off);
    const T v = w.cond[off[0]] ? load_as<T>(w.a, w.a_dtype, off[1]) : load_as<T>(w.b, w.b_dtype, off[2]);
    store_from<T>(w.out, w.out_dtype, i, v);
  }
}

template <class T>
__global__ void cast_kernel(const void* x, DType x_dtype, void* out, DType out_dtype, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    store_from<T>(out, out_dtype, i, load_as<T>(x, x_dtype, i));
  }
}

__global__ void arange_kernel(void* out, DType dtype, int64_t count, double start, double step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    store_from<double>(out, dtype, i, start + step * static_cast<double>(i));
  }
}

// An integer that float cannot hold exactly: compute in double instead.
bool wide_integer(DType d) { return d == DType::I64 || d == DType::I32; }

// Fused ops: each intermediate is rounded to the tensors' dtype, as the unfused ops round.
struct RopeArgs {
  Indexer<2> ix;  // cos, sin broadcast over the rotated value
  const void *x, *cos, *sin;
  void* out;  // the rotated value, contiguous; null when it only goes to the cache
  DType dtype;
  int64_t count, dim;
  int64_t heads, seq;  // > 0: x is [B, L, H, D] for out [B, H, L, D]
  // With a cache (non-null): the rotated value lands in the cache's rows as index_copy_kernel
  // moves its x (CacheRows).
  void* cache = nullptr;
  CacheRows cache_rows{};
};

__global__ void rope_kernel(RopeArgs a) {
  const int64_t half = a.dim / 2;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.count; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    a.ix.offsets(i, off);
    const int64_t d = i % a.dim;
    int64_t xi = i;
    if (a.heads > 0) {
      const int64_t row = i / a.dim, l = row % a.seq, h = (row / a.seq) % a.heads, b = row / (a.seq * a.heads);
      xi = ((b * a.seq + l) * a.heads + h) * a.dim + d;
    }
    const float xv = load_as<float>(a.x, a.dtype, xi);
    const float rotated = d < half ? -load_as<float>(a.x, a.dtype, xi + half) : load_as<float>(a.x, a.dtype, xi - half);
    const float c = load_as<float>(a.cos, a.dtype, off[0]), s = load_as<float>(a.sin, a.dtype, off[1]);
    const float v = round_to_dtype(xv * c, a.dtype) + round_to_dtype(rotated * s, a.dtype);
    if (a.out) store_from<float>(a.out, a.dtype, i, v);
    if (a.cache) {
      const int64_t at = a.cache_rows.offset(i);
      if (at >= 0) store_from<float>(a.cache, a.dtype, at, v);
    }
  }
}

__global__ void glu_kernel(const void* x, const void* y, void* out, DType dtype, int64_t count, UnaryOp act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = round_to_dtype(apply_unary<float>(act, load_as<float>(x, dtype, i), 0.f, 0.f), dtype);
    store_from<float>(out, dtype, i, g * load_as<float>(y, dtype, i));
  }
}

}  // namespace

Status unary(const Context& c, const Node& n, const UnaryParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const bool integer = !is_floating(out.dtype) && !is_floating(x.dtype) &&
                       (p.op == UnaryOp::BitwiseNot || p.op == UnaryOp::Neg || p.op == UnaryOp::Abs);
  UnaryArgs a{x.data, x.dtype, out.data, out.dtype, count, p.op, p.alpha, p.beta, integer};
  if (wide_integer(x.dtype)) unary_kernel<double><<<grid_for(count), kThreads, 0, c.stream>>>(a);
  else unary_kernel<float><<<grid_for(count), kThreads, 0, c.stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("unary kernel");
  return Status::ok();
}

Status binary(const Context& c, const Node& n, const BinaryParams& p) {
  const TensorRef& a = n.in[0];
  const TensorRef* b = p.has_b ? &n.in[1] : nullptr;
  const TensorRef& out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const TensorRef* ops[2] = {&a, b ? b : &a};
  BinaryArgs args{broadcast_indexer<2>(out, ops), a.data, b ? b->data : nullptr, a.dtype,
                  b ? b->dtype : a.dtype, out.data, out.dtype, count, p.op, p.scalar, p.alpha,
                  p.scalar_first, p.op >= BinaryOp::Eq && p.op <= BinaryOp::LogicalOr};
  // The same rule as the CPU reference for when the math is float.
  const bool float_math = is_floating(a.dtype) || (b && is_floating(b->dtype)) ||
                          (!b && p.scalar != std::trunc(p.scalar)) || is_floating(out.dtype) ||
                          p.op == BinaryOp::Div || p.op == BinaryOp::Atan2;
  const unsigned grid = grid_for(count);
  if (!float_math) {
    binary_int_kernel<<<grid, kThreads, 0, c.stream>>>(args);
  } else if (wide_integer(a.dtype) || (b && wide_integer(b->dtype))) {
    binary_float_kernel<double><<<grid, kThreads, 0, c.stream>>>(args);
  } else {
    binary_float_kernel<float><<<grid, kThreads, 0, c.stream>>>(args);
  }
  ETGPU_CUDA_LAUNCH_CHECK("binary kernel");
  return Status::ok();
}

Status where(const Context& c, const Node& n, const WhereParams&) {
  const TensorRef &cond = n.in[0], &a = n.in[1], &b = n.in[2], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const TensorRef* ops[3] = {&cond, &a, &b};
  WhereArgs w{broadcast_indexer<3>(out, ops), static_cast<const uint8_t*>(cond.data), a.data, b.data,
              a.dtype, b.dtype, out.data, out.dtype, count};
  if (!is_floating(out.dtype)) where_kernel<int64_t><<<grid_for(count), kThreads, 0, c.stream>>>(w);
  else where_kernel<float><<<grid_for(count), kThreads, 0, c.stream>>>(w);
  ETGPU_CUDA_LAUNCH_CHECK("where kernel");
  return Status::ok();
}

Status cast(const Context& c, const Node& n, const CastParams&) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  if (x.dtype == out.dtype) {
    ETGPU_CUDA_CHECK(cudaMemcpyAsync(out.data, x.data, out.nbytes(), cudaMemcpyDeviceToDevice, c.stream));
    return Status::ok();
  }
  if (!is_floating(x.dtype) && !is_floating(out.dtype)) {
    cast_kernel<int64_t><<<grid_for(count), kThreads, 0, c.stream>>>(x.data, x.dtype, out.data, out.dtype, count);
  } else {
    cast_kernel<double><<<grid_for(count), kThreads, 0, c.stream>>>(x.data, x.dtype, out.data, out.dtype, count);
  }
  ETGPU_CUDA_LAUNCH_CHECK("cast kernel");
  return Status::ok();
}

Status fill(const Context& c, const Node& n, const FillParams& p) {
  const int64_t count = n.out.numel();
  if (count == 0) return Status::ok();
  arange_kernel<<<grid_for(count), kThreads, 0, c.stream>>>(n.out.data, n.out.dtype, count, p.value, 0.0);
  ETGPU_CUDA_LAUNCH_CHECK("fill kernel");
  return Status::ok();
}

Status arange(const Context& c, const Node& n, const ArangeParams& p) {
  const int64_t count = n.out.numel();
  if (count == 0) return Status::ok();
  arange_kernel<<<grid_for(count), kThreads, 0, c.stream>>>(n.out.data, n.out.dtype, count, p.start, p.step);
  ETGPU_CUDA_LAUNCH_CHECK("arange kernel");
  return Status::ok();
}

// With a cache (p.cache_dim >= 0) n.out is the cache and the rotated value (rope_rows) is walked
// instead, each element stored into its cache row (and into extra_out[0] when present).
Status rope(const Context& c, const Node& n, const RopeParams& p) {
  const TensorRef rows = rope_rows(n, p);
  const int64_t count = rows.numel();
  if (count == 0) return Status::ok();
  const TensorRef* tables[2] = {&n.in[1], &n.in[2]};
  RopeArgs a{broadcast_indexer<2>(rows, tables), n.in[0].data, n.in[1].data, n.in[2].data, rows.data, rows.dtype,
             count, rows.size(-1), p.x_seq_major ? rows.shape[1] : 0, p.x_seq_major ? rows.shape[2] : 0};
  if (p.cache_dim >= 0) {
    a.cache = n.out.data;
    a.cache_rows = cache_rows(n.out, p.cache_dim, n.in[3], c.error_flag);
  }
  rope_kernel<<<grid_for(count), kThreads, 0, c.stream>>>(a);
  ETGPU_CUDA_LAUNCH_CHECK("rope kernel");
  return Status::ok();
}

Status glu(const Context& c, const Node& n, const GluParams& p) {
  const int64_t count = n.out.numel();
  if (count == 0) return Status::ok();
  glu_kernel<<<grid_for(count), kThreads, 0, c.stream>>>(n.in[0].data, n.in[1].data, n.out.data, n.out.dtype, count, p.act);
  ETGPU_CUDA_LAUNCH_CHECK("glu kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
