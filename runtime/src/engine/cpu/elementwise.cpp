// Elementwise families: unary, binary (broadcasting, mixed dtypes), where, cast, fill, arange.
// Floats compute in double and round once on store (matching torch's fp32 results for the basic
// arithmetic); integer outputs compute in int64.
#include <cmath>
#include <limits>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

double apply_unary(UnaryOp op, double x, double alpha, double beta) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return 1.0 / std::sqrt(x);
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Relu: return x > 0 ? x : (std::isnan(x) ? x : 0.0);
    case UnaryOp::GeluErf: return 0.5 * x * (1.0 + std::erf(x * kSqrt1_2));
    case UnaryOp::GeluTanh: return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
    case UnaryOp::Silu: return x / (1.0 + std::exp(-x));
    case UnaryOp::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::LogicalNot: return x == 0 ? 1.0 : 0.0;
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Reciprocal: return 1.0 / x;
    case UnaryOp::Erf: return std::erf(x);
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    case UnaryOp::Round: return std::nearbyint(x);
    case UnaryOp::Clamp: return std::isnan(x) ? x : std::min(std::max(x, alpha), beta);
    case UnaryOp::PowScalar: return std::pow(x, alpha);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Log1p: return std::log1p(x);
    case UnaryOp::Expm1: return std::expm1(x);
    case UnaryOp::Sign: return (x > 0) - (x < 0);
    case UnaryOp::Trunc: return std::trunc(x);
    case UnaryOp::BitwiseNot: return static_cast<double>(~to_int64(x));
    case UnaryOp::IsNan: return std::isnan(x) ? 1.0 : 0.0;
    case UnaryOp::Softplus: return x * alpha > beta ? x : std::log1p(std::exp(x * alpha)) / alpha;
    case UnaryOp::Elu: return x > 0 ? x : alpha * std::expm1(x);
    case UnaryOp::LeakyRelu: return x > 0 ? x : alpha * x;
    case UnaryOp::HardSigmoid: return std::min(std::max(x / 6.0 + 0.5, 0.0), 1.0);
    case UnaryOp::HardSwish: return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0;
    case UnaryOp::kCount: break;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double apply_binary_float(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return std::pow(a, b);
    case BinaryOp::Maximum: return (std::isnan(a) || std::isnan(b)) ? a + b : std::max(a, b);
    case BinaryOp::Minimum: return (std::isnan(a) || std::isnan(b)) ? a + b : std::min(a, b);
    case BinaryOp::Eq: return a == b;
    case BinaryOp::Ne: return a != b;
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    case BinaryOp::Ge: return a >= b;
    case BinaryOp::LogicalAnd: return (a != 0) && (b != 0);
    case BinaryOp::LogicalOr: return (a != 0) || (b != 0);
    case BinaryOp::FloorDiv: return std::floor(a / b);
    case BinaryOp::Remainder: {
      const double r = std::fmod(a, b);
      return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
    case BinaryOp::Atan2: return std::atan2(a, b);
    case BinaryOp::TruncDiv: return std::trunc(a / b);
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

// INT64_MIN / -1 overflows: the hardware traps (SIGFPE) on it, so it is answered without dividing
// (the wrapped quotient is INT64_MIN, remainder 0).
bool division_traps(int64_t a, int64_t b) { return b == 0 || (b == -1 && a == INT64_MIN); }

int64_t floor_div_int(int64_t a, int64_t b) {
  if (b == 0) return 0;  // torch raises; a kernel must not trap
  if (division_traps(a, b)) return a;
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t apply_binary_int(BinaryOp op, int64_t a, int64_t b) {
  switch (op) {
    case BinaryOp::Add: return wrap_add(a, b);
    case BinaryOp::Sub: return wrap_sub(a, b);
    case BinaryOp::Mul: return wrap_mul(a, b);
    case BinaryOp::Maximum: return std::max(a, b);
    case BinaryOp::Minimum: return std::min(a, b);
    case BinaryOp::FloorDiv: return floor_div_int(a, b);
    case BinaryOp::TruncDiv: return b == 0 ? 0 : division_traps(a, b) ? a : a / b;
    case BinaryOp::Remainder: return b == 0 ? 0 : wrap_sub(a, wrap_mul(floor_div_int(a, b), b));
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
      // Square-and-multiply: a loop of `b` steps would hang on a huge exponent.
      int64_t r = 1;
      for (int64_t base = a, e = b; e > 0; e >>= 1) {
        if (e & 1) r = wrap_mul(r, base);
        base = wrap_mul(base, base);
      }
      return r;
    }
    default: return 0;
  }
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::LogicalOr; }

}  // namespace

Status unary(const Node& n, const UnaryParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t count = out.numel();
  const bool integer = !is_floating(out.dtype) && !is_floating(x.dtype);
  for (int64_t i = 0; i < count; ++i) {
    if (integer && (p.op == UnaryOp::BitwiseNot || p.op == UnaryOp::Neg || p.op == UnaryOp::Abs)) {
      const int64_t v = load_int(x.data, x.dtype, i);
      const int64_t r = p.op == UnaryOp::Neg ? wrap_sub(0, v) : p.op == UnaryOp::Abs ? (v < 0 ? wrap_sub(0, v) : v)
                        : (x.dtype == DType::Bool ? !v : ~v);
      store_int(out.data, out.dtype, i, r);
    } else {
      store(out.data, out.dtype, i, apply_unary(p.op, load(x.data, x.dtype, i), p.alpha, p.beta));
    }
  }
  return Status::ok();
}

Status binary(const Node& n, const BinaryParams& p) {
  const TensorRef& a = n.in[0];
  const TensorRef* b = p.has_b ? &n.in[1] : nullptr;
  const TensorRef& out = n.out;
  std::vector<std::vector<int64_t>> strides{broadcast_strides(a, out)};
  if (b) strides.push_back(broadcast_strides(*b, out));
  StridedWalk walk(out, std::move(strides));
  const bool float_math = is_floating(a.dtype) || (b && is_floating(b->dtype)) ||
                          (!b && p.scalar != std::trunc(p.scalar)) || is_floating(out.dtype) ||
                          p.op == BinaryOp::Div || p.op == BinaryOp::Atan2;
  const int64_t count = out.numel();
  for (int64_t i = 0; i < count; ++i, walk.next()) {
    if (float_math) {
      double lhs = load(a.data, a.dtype, walk.offset(0));
      double rhs = b ? load(b->data, b->dtype, walk.offset(1)) : p.scalar;
      if (!b && p.scalar_first) std::swap(lhs, rhs);
      if (p.op == BinaryOp::Add || p.op == BinaryOp::Sub) rhs *= p.alpha;
      store(out.data, out.dtype, i, apply_binary_float(p.op, lhs, rhs));
    } else {
      int64_t lhs = load_int(a.data, a.dtype, walk.offset(0));
      int64_t rhs = b ? load_int(b->data, b->dtype, walk.offset(1)) : to_int64(p.scalar);
      if (!b && p.scalar_first) std::swap(lhs, rhs);
      if (p.op == BinaryOp::Add || p.op == BinaryOp::Sub) rhs = wrap_mul(rhs, to_int64(p.alpha));
      const int64_t r = apply_binary_int(p.op, lhs, rhs);
      if (is_comparison(p.op)) store(out.data, out.dtype, i, static_cast<double>(r));
      else store_int(out.data, out.dtype, i, r);
    }
  }
  return Status::ok();
}

Status where(const Node& n, const WhereParams&) {
  const TensorRef &c = n.in[0], &a = n.in[1], &b = n.in[2], &out = n.out;
  StridedWalk walk(out, {broadcast_strides(c, out), broadcast_strides(a, out), broadcast_strides(b, out)});
  const int64_t count = out.numel();
  const bool integer = !is_floating(out.dtype);
  for (int64_t i = 0; i < count; ++i, walk.next()) {
    const bool take_a = static_cast<const uint8_t*>(c.data)[walk.offset(0)] != 0;
    const TensorRef& src = take_a ? a : b;
    const int64_t offset = walk.offset(take_a ? 1 : 2);
    if (integer) store_int(out.data, out.dtype, i, load_int(src.data, src.dtype, offset));
    else store(out.data, out.dtype, i, load(src.data, src.dtype, offset));
  }
  return Status::ok();
}

Status cast(const Node& n, const CastParams&) {
  const TensorRef &x = n.in[0], &out = n.out;
  const int64_t count = out.numel();
  const bool integer = !is_floating(x.dtype) && !is_floating(out.dtype);
  for (int64_t i = 0; i < count; ++i) {
    if (integer) store_int(out.data, out.dtype, i, load_int(x.data, x.dtype, i));
    else store(out.data, out.dtype, i, load(x.data, x.dtype, i));
  }
  return Status::ok();
}

Status fill(const Node& n, const FillParams& p) {
  const int64_t count = n.out.numel();
  for (int64_t i = 0; i < count; ++i) store(n.out.data, n.out.dtype, i, p.value);
  return Status::ok();
}

Status arange(const Node& n, const ArangeParams& p) {
  const int64_t count = n.out.numel();
  for (int64_t i = 0; i < count; ++i) store(n.out.data, n.out.dtype, i, p.start + p.step * static_cast<double>(i));
  return Status::ok();
}

// Fused ops: the rounding of each intermediate to the tensors' dtype mirrors the unfused ops.
// Rope walks its rotated value `rows` (rope_rows): the plain op stores element i to out; with a
// cache, element i of row j (along cache_dim) goes to row index[j] of the cache, as index_copy
// moves it, after every position was checked (index_copy's error, nothing written), and to the
// rotated output as well when there is one. With a norm, each row's rstd is taken when the walk
// enters the row, and x's elements are read through the norm, rounded to x's dtype as the
// separate RmsNorm's output is stored.
Status rope(const Node& n, const RopeParams& p) {
  const TensorRef &x = n.in[0];
  const TensorRef rows = rope_rows(n, p);
  const TensorRef* norm_weight = rope_norm_weight(n, p);
  float rstd = 1.0f;
  // x[xi], the element at position d of its row, as the rotation reads it.
  auto input = [&](int64_t xi, int64_t d) {
    const float v = static_cast<float>(load(x.data, x.dtype, xi));
    return p.norm ? round_to(x.dtype, rms_normalize(v, rstd, norm_weight, d, x.dtype, *p.norm)) : v;
  };
  const bool to_cache = p.cache_dim >= 0;
  int64_t inner = 1, count = 1, extent = 1;
  if (to_cache) {
    const TensorRef &index = n.in[3], &cache = n.out;
    for (int d = p.cache_dim + 1; d < cache.rank; ++d) inner *= cache.shape[d];
    count = index.shape[0];
    extent = cache.shape[p.cache_dim];
    ETGPU_RETURN_IF_ERROR(check_positions(index, extent));
  }
  StridedWalk walk(rows, {broadcast_strides(n.in[1], rows), broadcast_strides(n.in[2], rows)});
  const int64_t total = rows.numel(), dim = x.size(-1), half = dim / 2;
  for (int64_t i = 0; i < total; ++i, walk.next()) {
    const int64_t d = i % dim;
    // rows [B, H, L, D] from x [B, L, H, D] when seq-major
    const int64_t xi = p.x_seq_major ? seq_major_row(i / dim, rows.shape[1], rows.shape[2]) * dim + d : i;
    if (p.norm && d == 0) rstd = rms_rstd(x, xi, dim, p.norm->eps);
    const float xv = input(xi, d);
    const float rotated = d < half ? -input(xi + half, d + half) : input(xi - half, d - half);
    const float c = static_cast<float>(load(n.in[1].data, x.dtype, walk.offset(0)));
    const float s = static_cast<float>(load(n.in[2].data, x.dtype, walk.offset(1)));
    const float v = round_to(x.dtype, xv * c) + round_to(x.dtype, rotated * s);
    if (rows.data) store(rows.data, rows.dtype, i, v);
    if (to_cache) {  // rows viewed as [outer, count, inner], the cache as [outer, extent, inner]
      const int64_t q = i % inner, rest = i / inner, j = rest % count, o = rest / count;
      const int64_t target = load_int(n.in[3].data, n.in[3].dtype, j);
      store(n.out.data, n.out.dtype, (o * extent + target) * inner + q, v);
    }
  }
  return Status::ok();
}

Status glu(const Node& n, const GluParams& p) {
  const TensorRef &a = n.in[0], &b = n.in[1], &out = n.out;
  const int64_t count = out.numel();
  for (int64_t i = 0; i < count; ++i) {
    const float act = round_to(a.dtype, static_cast<float>(apply_unary(p.act, load(a.data, a.dtype, i), 0, 0)));
    store(out.data, out.dtype, i, static_cast<double>(act) * load(b.data, b.dtype, i));
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
