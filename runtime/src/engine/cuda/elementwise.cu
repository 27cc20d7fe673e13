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

// Kernels are instantiated for T (the compute type), E (the storage type when every operand
// shares one float dtype, else AnyDType: see load_elem) and I (the index type, index_math.h).
// with_types picks E and I on the host: a fixed E only on the 32-bit path, which every tensor
// below 2^31 elements takes, so the rare 64-bit path costs one instance, not one per dtype.
template <class F>
void with_types(bool narrow, bool one_dtype, DType dtype, F&& f) {
  if (!narrow) return f(AnyDType{}, int64_t{});
  if (!one_dtype) return f(AnyDType{}, uint32_t{});
  with_storage_type(dtype, [&](auto e) { f(e, uint32_t{}); });
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

template <class T, class E, class I>
__global__ void unary_kernel(UnaryArgs a) {
  for (I i = grid_first<I>(); i < static_cast<I>(a.count); i += grid_stride<I>()) {
    if (std::is_same_v<E, AnyDType> && a.integer) {
      const int64_t v = load_as<int64_t>(a.x, a.x_dtype, i);
      const int64_t r = a.op == UnaryOp::Neg ? -v : a.op == UnaryOp::Abs ? (v < 0 ? -v : v)
                        : (a.x_dtype == DType::Bool ? !v : ~v);
      store_from<int64_t>(a.out, a.out_dtype, i, r);
    } else {
      const T r = apply_unary<T>(a.op, load_elem<E, T>(a.x, a.x_dtype, i), T(a.alpha), T(a.beta));
      store_elem<E, T>(a.out, a.out_dtype, i, r);
    }
  }
}

template <class I>
struct BinaryArgs {
  Indexer<2, I> ix;
  const void* a;
  const void* b;  // null: the scalar operand
  DType a_dtype, b_dtype;
  void* out;
  DType out_dtype;
  I count;
  BinaryOp op;
  double scalar, alpha;
  bool scalar_first, comparison;
};

template <class T, class E, class I>
__global__ void binary_float_kernel(BinaryArgs<I> a) {
  for (I i = grid_first<I>(); i < a.count; i += grid_stride<I>()) {
    I off[2];
    a.ix.offsets(i, off);
    T lhs = load_elem<E, T>(a.a, a.a_dtype, off[0]);
    T rhs = a.b ? load_elem<E, T>(a.b, a.b_dtype, off[1]) : T(a.scalar);
    if (!a.b && a.scalar_first) { const T t = lhs; lhs = rhs; rhs = t; }
    if (a.op == BinaryOp::Add || a.op == BinaryOp::Sub) rhs *= T(a.alpha);
    store_elem<E, T>(a.out, a.out_dtype, i, apply_binary_float<T>(a.op, lhs, rhs));
  }
}

template <class I>
__global__ void binary_int_kernel(BinaryArgs<I> a) {
  for (I i = grid_first<I>(); i < a.count; i += grid_stride<I>()) {
    I off[2];
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

template <class I>
struct WhereArgs {
  Indexer<3, I> ix;
  const uint8_t* cond;
  const void* a;
  const void* b;
  DType a_dtype, b_dtype;
  void* out;
  DType out_dtype;
  I count;
};

template <class T, class I>
__global__ void where_kernel(WhereArgs<I> w) {
  for (I i = grid_first<I>(); i < w.count; i += grid_stride<I>()) {
    I off[3];
    w.ix.offsets(i, off);
    const T v = w.cond[off[0]] ? load_as<T>(w.a, w.a_dtype, off[1]) : load_as<T>(w.b, w.b_dtype, off[2]);
    store_from<T>(w.out, w.out_dtype, i, v);
  }
}

template <class T, class I>
__global__ void cast_kernel(const void* x, DType x_dtype, void* out, DType out_dtype, I count) {
  for (I i = grid_first<I>(); i < count; i += grid_stride<I>()) {
    store_from<T>(out, out_dtype, i, load_as<T>(x, x_dtype, i));
  }
}

template <class I>
__global__ void arange_kernel(void* out, DType dtype, I count, double start, double step) {
  for (I i = grid_first<I>(); i < count; i += grid_stride<I>()) {
    store_from<double>(out, dtype, i, start + step * static_cast<double>(i));
  }
}

Status launch_arange(const Context& c, const TensorRef& out, double start, double step, const char* what) {
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  with_index_type(fits_index32(count), [&](auto index) {
    using I = decltype(index);
    const auto total = static_cast<I>(count);
    arange_kernel<I><<<grid_for(count), kThreads, 0, c.stream>>>(out.data, out.dtype, total, start, step);
  });
  ETGPU_CUDA_LAUNCH_CHECK(what);
  return Status::ok();
}

// An integer that float cannot hold exactly: compute in double instead.
bool wide_integer(DType d) { return d == DType::I64 || d == DType::I32; }

// Fused ops: each intermediate is rounded to the tensors' dtype, as the unfused ops round.
// GLU's activations (validated: silu or gelu), each with a constant op so that apply_unary
// folds to its one expression.
__device__ __forceinline__ float glu_gate(UnaryOp act, float v) {
  if (act == UnaryOp::Silu) return apply_unary<float>(UnaryOp::Silu, v, 0.f, 0.f);
  if (act == UnaryOp::GeluErf) return apply_unary<float>(UnaryOp::GeluErf, v, 0.f, 0.f);
  return apply_unary<float>(UnaryOp::GeluTanh, v, 0.f, 0.f);
}

// out = round(act(x)) * y over `groups` groups of N contiguous elements.
template <class E, int N, class I>
__global__ void glu_kernel(const E* x, const E* y, E* out, I groups, UnaryOp act) {
  begin_dependent_grid();
  for (I g = grid_first<I>(); g < groups; g += grid_stride<I>()) {
    float xv[N], yv[N];
    load_n<N>(x + g * N, xv);
    load_n<N>(y + g * N, yv);
#pragma unroll
    for (int t = 0; t < N; ++t) xv[t] = round_to<E>(glu_gate(act, xv[t])) * yv[t];
    store_n<N>(out + g * N, xv);
  }
}

}  // namespace

Status unary(const Context& c, const Node& n, const UnaryParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const bool integer = !is_floating(out.dtype) && !is_floating(x.dtype) &&
                       (p.op == UnaryOp::BitwiseNot || p.op == UnaryOp::Neg || p.op == UnaryOp::Abs);
  const UnaryArgs a{x.data, x.dtype, out.data, out.dtype, count, p.op, p.alpha, p.beta, integer};
  with_types(fits_index32(count), x.dtype == out.dtype, x.dtype, [&](auto e, auto index) {
    using E = decltype(e);
    using I = decltype(index);
    if (wide_integer(x.dtype)) unary_kernel<double, AnyDType, I><<<grid_for(count), kThreads, 0, c.stream>>>(a);
    else unary_kernel<float, E, I><<<grid_for(count), kThreads, 0, c.stream>>>(a);
  });
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
  const OperandWalk<2> walk = broadcast_walk<2>(out, ops);
  // The same rule as the CPU reference for when the math is float.
  const bool float_math = is_floating(a.dtype) || (b && is_floating(b->dtype)) ||
                          (!b && p.scalar != std::trunc(p.scalar)) || is_floating(out.dtype) ||
                          p.op == BinaryOp::Div || p.op == BinaryOp::Atan2;
  const bool wide = wide_integer(a.dtype) || (b && wide_integer(b->dtype));
  const bool one_dtype = a.dtype == out.dtype && (!b || b->dtype == out.dtype);
  const unsigned grid = grid_for(count);
  with_types(walk.fits_index32(), one_dtype, out.dtype, [&](auto e, auto index) {
    using E = decltype(e);
    using I = decltype(index);
    const BinaryArgs<I> args{walk.indexer<I>(), a.data, b ? b->data : nullptr, a.dtype,
                             b ? b->dtype : a.dtype, out.data, out.dtype, static_cast<I>(count), p.op,
                             p.scalar, p.alpha, p.scalar_first, p.op >= BinaryOp::Eq && p.op <= BinaryOp::LogicalOr};
    if (!float_math) binary_int_kernel<I><<<grid, kThreads, 0, c.stream>>>(args);
    else if (wide) binary_float_kernel<double, AnyDType, I><<<grid, kThreads, 0, c.stream>>>(args);
    else binary_float_kernel<float, E, I><<<grid, kThreads, 0, c.stream>>>(args);
  });
  ETGPU_CUDA_LAUNCH_CHECK("binary kernel");
  return Status::ok();
}

Status where(const Context& c, const Node& n, const WhereParams&) {
  const TensorRef &cond = n.in[0], &a = n.in[1], &b = n.in[2], &out = n.out;
  const int64_t count = out.numel();
  if (count == 0) return Status::ok();
  const TensorRef* ops[3] = {&cond, &a, &b};
  const OperandWalk<3> walk = broadcast_walk<3>(out, ops);
  with_index_type(walk.fits_index32(), [&](auto index) {
    using I = decltype(index);
    const WhereArgs<I> w{walk.indexer<I>(), static_cast<const uint8_t*>(cond.data), a.data, b.data,
                         a.dtype, b.dtype, out.data, out.dtype, static_cast<I>(count)};
    if (!is_floating(out.dtype)) where_kernel<int64_t, I><<<grid_for(count), kThreads, 0, c.stream>>>(w);
    else where_kernel<float, I><<<grid_for(count), kThreads, 0, c.stream>>>(w);
  });
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
  const bool integer = !is_floating(x.dtype) && !is_floating(out.dtype);
  with_index_type(fits_index32(count), [&](auto index) {
    using I = decltype(index);
    const auto total = static_cast<I>(count);
    const unsigned grid = grid_for(count);
    if (integer) cast_kernel<int64_t, I><<<grid, kThreads, 0, c.stream>>>(x.data, x.dtype, out.data, out.dtype, total);
    else cast_kernel<double, I><<<grid, kThreads, 0, c.stream>>>(x.data, x.dtype, out.data, out.dtype, total);
  });
  ETGPU_CUDA_LAUNCH_CHECK("cast kernel");
  return Status::ok();
}

Status fill(const Context& c, const Node& n, const FillParams& p) {
  return launch_arange(c, n.out, p.value, 0.0, "fill kernel");
}

Status arange(const Context& c, const Node& n, const ArangeParams& p) {
  return launch_arange(c, n.out, p.start, p.step, "arange kernel");
}

Status glu(const Context& c, const Node& n, const GluParams& p) {
  const int64_t count = n.out.numel();
  if (count == 0) return Status::ok();
  const int64_t vec = 16 / static_cast<int64_t>(dtype_size(n.out.dtype));
  const bool vector = count % vec == 0 && all_aligned16({n.in[0].data, n.in[1].data, n.out.data});
  with_float_storage(n.out.dtype, [&](auto e) {
    using E = decltype(e);
    constexpr int kVec = 16 / sizeof(E);
    with_index_type(fits_index32(count), [&](auto index) {
      using I = decltype(index);
      const E* x = static_cast<const E*>(n.in[0].data);
      const E* y = static_cast<const E*>(n.in[1].data);
      E* out = static_cast<E*>(n.out.data);
      const int64_t groups = vector ? count / kVec : count;
      const unsigned grid = grid_for(groups);
      if (vector) launch_overlapped(glu_kernel<E, kVec, I>, grid, kThreads, 0, c.stream, x, y, out, static_cast<I>(groups), p.act);
      else launch_overlapped(glu_kernel<E, 1, I>, grid, kThreads, 0, c.stream, x, y, out, static_cast<I>(groups), p.act);
    });
  });
  ETGPU_CUDA_LAUNCH_CHECK("glu kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
