// What an engine sees of a tensor: a pointer into engine memory, a dtype and a concrete shape.
// Engines never see the IR; the executor resolves symbolic shapes before every call.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace etgpu {

enum class DType : int8_t { F32 = 0, F16, BF16, I64, I32, I16, I8, U8, Bool };
constexpr int kNumDTypes = 9;

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
inline bool is_floating(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

constexpr int kMaxRank = 8;

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::F32;
  int rank = 0;
  int64_t shape[kMaxRank] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Size of dim `d`, counting negative dims from the end.
  int64_t size(int d) const { return shape[d < 0 ? d + rank : d]; }
};

// Whether two tensors have one shape (rank and every extent).
inline bool same_shape(const TensorRef& a, const TensorRef& b) {
  return a.rank == b.rank && std::equal(a.shape, a.shape + a.rank, b.shape);
}

// Whether two tensors share a byte (one without data has none): what decides whether two
// instructions may run in one launch, in either order.
inline bool bytes_overlap(const TensorRef& a, const TensorRef& b) {
  const auto *pa = static_cast<const char*>(a.data), *pb = static_cast<const char*>(b.data);
  return pa && pb && pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// Contiguous (row-major) strides in elements.
inline void contiguous_strides(const TensorRef& t, int64_t* strides) {
  int64_t s = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    strides[i] = s;
    s *= t.shape[i];
  }
}

// Matrix offset (in whole matrices) of `out`'s batch `b` inside `x`'s batch dims, for a batched
// matmul whose last two dims are the matrix: numpy broadcasting of the leading dims.
inline int64_t matmul_batch_offset(const TensorRef& x, const TensorRef& out, int64_t b) {
  int64_t offset = 0, stride = 1;
  for (int d = out.rank - 3, xd = x.rank - 3; d >= 0; --d, --xd) {
    const int64_t index = b % out.shape[d];
    b /= out.shape[d];
    if (xd >= 0) {
      if (x.shape[xd] != 1) offset += index * stride;
      stride *= x.shape[xd];
    }
  }
  return offset;
}

}  // namespace etgpu
