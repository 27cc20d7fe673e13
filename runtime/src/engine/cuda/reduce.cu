// Reductions over any set of dims (Sum, Mean, Amax, Amin, Prod, Argmax, Argmin, Any, All) with
// PyTorch semantics: NaN propagates through max/min and wins argmax/argmin (first NaN), ties pick
// the lowest index. Float inputs accumulate in double, integer inputs in int64 (exact sums).
//
// The input is viewed as kept dims x reduced dims (each with its own strides into x); the output
// is the kept dims in order (keepdim only changes the shape, not the memory). When x's innermost
// dim is reduced, one block reduces one output (coalesced reads along that dim); otherwise one
// thread per output walks the reduced elements (neighbouring threads read neighbouring kept
// elements, which is coalesced for that layout).
#include <cfloat>
#include <climits>

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {
namespace {

struct Walk {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t stride[kMaxRank] = {};
  __device__ __forceinline__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      off += (linear % shape[d]) * stride[d];
      linear /= shape[d];
    }
    return off;
  }
};

template <class A>
struct State {
  A v;
  int64_t i;
};

template <class A>
__device__ __forceinline__ bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>) return isnan(v); else return false;
}

template <class A>
__device__ __forceinline__ State<A> identity(ReduceOp op) {
  switch (op) {
    case ReduceOp::Prod: case ReduceOp::All: return {A(1), 0};
    case ReduceOp::Amax: case ReduceOp::Argmax:
      if constexpr (std::is_floating_point_v<A>) return {A(-INFINITY), INT64_MAX}; else return {A(LLONG_MIN), INT64_MAX};
    case ReduceOp::Amin: case ReduceOp::Argmin:
      if constexpr (std::is_floating_point_v<A>) return {A(INFINITY), INT64_MAX}; else return {A(LLONG_MAX), INT64_MAX};
    default: return {A(0), 0};
  }
}

// Folds element `v` at reduced index `i` into the state (also used to merge two states, in which
// case `i` is the other state's index: order-independent because ties resolve by index).
template <class A>
__device__ __forceinline__ State<A> combine(ReduceOp op, State<A> s, A v, int64_t i) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Mean: return {s.v + v, 0};
    case ReduceOp::Prod: return {s.v * v, 0};
    case ReduceOp::Any: return {A((s.v != A(0)) || (v != A(0))), 0};
    case ReduceOp::All: return {A((s.v != A(0)) && (v != A(0))), 0};
    case ReduceOp::Amax: case ReduceOp::Amin: {
      if (is_nan(s.v) || is_nan(v)) return {s.v + v, 0};
      const bool take = op == ReduceOp::Amax ? v > s.v : v < s.v;
      return {take ? v : s.v, 0};
    }
    case ReduceOp::Argmax: case ReduceOp::Argmin: {
      const bool sn = is_nan(s.v), vn = is_nan(v);
      bool take;
      if (sn || vn) take = vn && (!sn || i < s.i);
      else if (v == s.v) take = i < s.i;
      else take = op == ReduceOp::Argmax ? v > s.v : v < s.v;
      return take ? State<A>{v, i} : s;
    }
    default: return s;
  }
}

template <class A>
__device__ __forceinline__ void finish(ReduceOp op, State<A> s, int64_t count, void* out, DType dtype, int64_t o) {
  if (op == ReduceOp::Argmax || op == ReduceOp::Argmin) {
    store_from<int64_t>(out, dtype, o, s.i == INT64_MAX ? 0 : s.i);
  } else if (op == ReduceOp::Mean) {
    store_from<double>(out, dtype, o, static_cast<double>(s.v) / static_cast<double>(count));
  } else {
    store_from<A>(out, dtype, o, s.v);
  }
}

struct ReduceArgs {
  Walk kept, reduced;
  const void* x;
  DType x_dtype;
  void* out;
  DType out_dtype;
  int64_t outputs, count;
  ReduceOp op;
};

template <class A>
__global__ void reduce_block_kernel(ReduceArgs a) {
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  for (int64_t o = blockIdx.x; o < a.outputs; o += gridDim.x) {
    const int64_t base = a.kept.offset(o);
    State<A> s = identity<A>(a.op);
    for (int64_t r = threadIdx.x; r < a.count; r += blockDim.x) {
      s = combine(a.op, s, load_as<A>(a.x, a.x_dtype, base + a.reduced.offset(r)), r);
    }
    // Warp, then block: merge states by shuffling both fields.
    for (int off = 16; off > 0; off >>= 1) {
      const A v = __shfl_xor_sync(0xffffffffu, s.v, off);
      const int64_t i = __shfl_xor_sync(0xffffffffu, s.i, off);
      s = combine(a.op, s, v, i);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sv[warp] = s.v; si[warp] = s.i; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < int(blockDim.x >> 5); ++w) s = combine(a.op, s, sv[w], si[w]);
      finish(a.op, s, a.count, a.out, a.out_dtype, o);
    }
    __syncthreads();
  }
}

template <class A>
__global__ void reduce_thread_kernel(ReduceArgs a) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < a.outputs; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = a.kept.offset(o);
    State<A> s = identity<A>(a.op);
    for (int64_t r = 0; r < a.count; ++r) {
      s = combine(a.op, s, load_as<A>(a.x, a.x_dtype, base + a.reduced.offset(r)), r);
    }
    finish(a.op, s, a.count, a.out, a.out_dtype, o);
  }
}

}  // namespace

Status reduce(const Context& c, const Node& n, const ReduceParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  ReduceArgs a{};
  a.x = x.data;
  a.x_dtype = x.dtype;
  a.out = out.data;
  a.out_dtype = out.dtype;
  a.op = p.op;
  int64_t strides[kMaxRank];
  contiguous_strides(x, strides);
  bool reduced[kMaxRank] = {};
  for (int d = 0; d < x.rank && d < kMaxRank; ++d) reduced[d] = p.dims.empty();
  for (int r : p.dims) reduced[r < 0 ? r + x.rank : r] = true;
  for (int d = 0; d < x.rank; ++d) {
    Walk& w = reduced[d] ? a.reduced : a.kept;
    w.shape[w.rank] = x.shape[d];
    w.stride[w.rank] = strides[d];
    ++w.rank;
  }
  a.outputs = out.numel();
  a.count = 1;
  for (int d = 0; d < a.reduced.rank; ++d) a.count *= a.reduced.shape[d];
  if (a.outputs == 0) return Status::ok();
  const bool inner_reduced = x.rank == 0 || reduced[x.rank - 1];
  const bool integer = !is_floating(x.dtype);
  if (inner_reduced && a.count > 1) {
    const int threads = a.count >= 1024 ? 512 : a.count >= 256 ? 256 : a.count >= 64 ? 64 : 32;
    const unsigned grid = static_cast<unsigned>(a.outputs < 65535 * 8 ? a.outputs : 65535 * 8);
    if (integer) reduce_block_kernel<int64_t><<<grid, threads, 0, c.stream>>>(a);
    else reduce_block_kernel<double><<<grid, threads, 0, c.stream>>>(a);
  } else {
    if (integer) reduce_thread_kernel<int64_t><<<grid_for(a.outputs), kThreads, 0, c.stream>>>(a);
    else reduce_thread_kernel<double><<<grid_for(a.outputs), kThreads, 0, c.stream>>>(a);
  }
  ETGPU_CUDA_LAUNCH_CHECK("reduce kernel");
  return Status::ok();
}

}  // namespace etgpu::cuda
