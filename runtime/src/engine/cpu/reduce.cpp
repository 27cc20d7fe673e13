// Reductions over a set of dims (all dims when the list is empty), with torch's semantics:
// floats accumulate in double and round once on store; integer and bool sums/products stay in
// int64 (torch promotes them to int64); amax/amin/argmax/argmin propagate NaN (a NaN is the
// extreme, and the first one wins); argmax/argmin return the first extreme's index, counted
// row-major over the reduced dims (the flat index when every dim is reduced).
#include <cmath>
#include <limits>

#include "engine/cpu/cpu_common.h"

namespace etgpu::cpu {
namespace {

// The input seen as [kept dims..., reduced dims...]: an output element is one position of the
// kept dims (in their original order, which is also the output's row-major order with or without
// keepdim); it reduces over every position of the reduced dims.
struct ReduceLayout {
  std::vector<int64_t> kept_shape, kept_strides, red_shape, red_strides;
  int64_t red_count = 1;
};

ReduceLayout make_layout(const TensorRef& x, const std::vector<int>& dims) {
  std::vector<bool> reduced(x.rank, dims.empty());
  // A 0-d tensor reduces its single element whatever the dims say (torch accepts dim 0 or -1).
  if (x.rank > 0) for (int d : dims) reduced[d < 0 ? d + x.rank : d] = true;
  std::vector<int64_t> strides(x.rank);
  contiguous_strides(x, strides.data());
  ReduceLayout layout;
  for (int d = 0; d < x.rank; ++d) {
    if (reduced[d]) {
      layout.red_shape.push_back(x.shape[d]);
      layout.red_strides.push_back(strides[d]);
      layout.red_count *= x.shape[d];
    } else {
      layout.kept_shape.push_back(x.shape[d]);
      layout.kept_strides.push_back(strides[d]);
    }
  }
  return layout;
}

// Offsets into x of every element one output element reduces, in row-major order of the reduced
// dims; computed once and shifted by each output element's base offset.
std::vector<int64_t> reduced_offsets(const ReduceLayout& layout) {
  std::vector<int64_t> offsets(static_cast<size_t>(layout.red_count));
  std::vector<int64_t> index(layout.red_shape.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < layout.red_count; ++i) {
    offsets[i] = offset;
    for (int d = static_cast<int>(index.size()) - 1; d >= 0; --d) {
      offset += layout.red_strides[d];
      if (++index[d] < layout.red_shape[d]) break;
      offset -= layout.red_strides[d] * layout.red_shape[d];
      index[d] = 0;
    }
  }
  return offsets;
}

int64_t base_offset(const ReduceLayout& layout, int64_t out_index) {
  int64_t offset = 0;
  for (int d = static_cast<int>(layout.kept_shape.size()) - 1; d >= 0; --d) {
    offset += (out_index % layout.kept_shape[d]) * layout.kept_strides[d];
    out_index /= layout.kept_shape[d];
  }
  return offset;
}

// One output element of a float-valued reduction (sum, mean, prod, amax, amin).
double reduce_float(ReduceOp op, const TensorRef& x, int64_t base, const std::vector<int64_t>& offsets) {
  const int64_t count = static_cast<int64_t>(offsets.size());
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: {
      double acc = 0;
      for (int64_t off : offsets) acc += load(x.data, x.dtype, base + off);
      return op == ReduceOp::Mean ? acc / static_cast<double>(count) : acc;
    }
    case ReduceOp::Prod: {
      double acc = 1;
      for (int64_t off : offsets) acc *= load(x.data, x.dtype, base + off);
      return acc;
    }
    default: {  // Amax / Amin: NaN wins; an empty reduction (torch rejects it) yields NaN
      if (count == 0) return std::numeric_limits<double>::quiet_NaN();
      double best = load(x.data, x.dtype, base + offsets[0]);
      for (int64_t i = 1; i < count && !std::isnan(best); ++i) {
        const double v = load(x.data, x.dtype, base + offsets[i]);
        if (std::isnan(v) || (op == ReduceOp::Amax ? v > best : v < best)) best = v;
      }
      return best;
    }
  }
}

// One output element of an integer reduction (sum, prod, amax, amin on integer or bool data).
// Products wrap in unsigned arithmetic, as torch's int64 does, without signed-overflow UB.
int64_t reduce_int(ReduceOp op, const TensorRef& x, int64_t base, const std::vector<int64_t>& offsets) {
  switch (op) {
    case ReduceOp::Sum: {
      uint64_t acc = 0;
      for (int64_t off : offsets) acc += static_cast<uint64_t>(load_int(x.data, x.dtype, base + off));
      return static_cast<int64_t>(acc);
    }
    case ReduceOp::Prod: {
      uint64_t acc = 1;
      for (int64_t off : offsets) acc *= static_cast<uint64_t>(load_int(x.data, x.dtype, base + off));
      return static_cast<int64_t>(acc);
    }
    default: {  // Amax / Amin
      if (offsets.empty()) return 0;
      int64_t best = load_int(x.data, x.dtype, base + offsets[0]);
      for (int64_t off : offsets) {
        const int64_t v = load_int(x.data, x.dtype, base + off);
        best = op == ReduceOp::Amax ? std::max(best, v) : std::min(best, v);
      }
      return best;
    }
  }
}

// Index (into the reduced positions) of the first maximum / minimum; a NaN beats everything.
int64_t arg_extreme(bool is_max, const TensorRef& x, int64_t base, const std::vector<int64_t>& offsets) {
  const int64_t count = static_cast<int64_t>(offsets.size());
  if (count == 0) return 0;
  int64_t best_index = 0;
  if (is_floating(x.dtype)) {
    double best = load(x.data, x.dtype, base + offsets[0]);
    for (int64_t i = 1; i < count && !std::isnan(best); ++i) {
      const double v = load(x.data, x.dtype, base + offsets[i]);
      if (std::isnan(v) || (is_max ? v > best : v < best)) {
        best = v;
        best_index = i;
      }
    }
  } else {
    int64_t best = load_int(x.data, x.dtype, base + offsets[0]);
    for (int64_t i = 1; i < count; ++i) {
      const int64_t v = load_int(x.data, x.dtype, base + offsets[i]);
      if (is_max ? v > best : v < best) {
        best = v;
        best_index = i;
      }
    }
  }
  return best_index;
}

bool reduce_bool(ReduceOp op, const TensorRef& x, int64_t base, const std::vector<int64_t>& offsets) {
  const bool want_any = op == ReduceOp::Any;
  for (int64_t off : offsets) {
    // A NaN is truthy, as in torch: compare with zero rather than converting to bool.
    const bool truthy = load(x.data, x.dtype, base + off) != 0;
    if (truthy == want_any) return want_any;
  }
  return !want_any;
}

}  // namespace

Status reduce(const Node& n, const ReduceParams& p) {
  const TensorRef &x = n.in[0], &out = n.out;
  const ReduceLayout layout = make_layout(x, p.dims);
  const std::vector<int64_t> offsets = reduced_offsets(layout);
  const int64_t count = out.numel();
  // Integer arithmetic whenever the result is an integer (sum of ints/bools is int64 in torch).
  const bool int_math = !is_floating(x.dtype) && !is_floating(out.dtype);
  for (int64_t o = 0; o < count; ++o) {
    const int64_t base = base_offset(layout, o);
    switch (p.op) {
      case ReduceOp::Argmax:
      case ReduceOp::Argmin:
        store_int(out.data, out.dtype, o, arg_extreme(p.op == ReduceOp::Argmax, x, base, offsets));
        break;
      case ReduceOp::Any:
      case ReduceOp::All:
        store(out.data, out.dtype, o, reduce_bool(p.op, x, base, offsets) ? 1.0 : 0.0);
        break;
      default:
        if (int_math && p.op != ReduceOp::Mean) store_int(out.data, out.dtype, o, reduce_int(p.op, x, base, offsets));
        else store(out.data, out.dtype, o, reduce_float(p.op, x, base, offsets));
    }
  }
  return Status::ok();
}

}  // namespace etgpu::cpu
