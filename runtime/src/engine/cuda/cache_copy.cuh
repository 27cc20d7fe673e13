// IndexCopy's work (a KV cache's rows written at positions) as a device function and its host
// plan, so that index.cu's own kernel and rope.cu's group launch (a decode layer's q and k
// rotations with v's cache write) run the same code.
#pragma once

#include "engine/cuda/cuda_common.h"
#include "engine/cuda/device.cuh"

namespace etgpu::cuda {

// Marks v as used here: without it the compiler moves v's load into the branch that stores v,
// after the branch on the position, and the two loads run one after the other.
template <class E>
__device__ __forceinline__ void use_now(const E& v) {
  if constexpr (sizeof(E) == 16) asm volatile("" ::"r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
  else if constexpr (sizeof(E) == 8) asm volatile("" ::"l"(v));
  else asm volatile("" ::"r"(static_cast<uint32_t>(v)));
}

// index_copy in place, in units E of up to 16 bytes: CacheRows places each unit i of the rows
// written, which x holds at x_rows.element (its own place, or its seq-major one).
template <class E, class I>
struct IndexCopyArgs {
  const E* x;
  E* dst;
  I total;
  CacheRows<I> rows;
  SeqMajorRows<I> x_rows;
};

// Units first, first + stride, ... of the copy (a grid-stride loop over the threads given to it).
template <class E, class I>
__device__ __forceinline__ void index_copy_units(const IndexCopyArgs<E, I>& a, I first, I stride) {
  for (I i = first; i < a.total; i += stride) {
    const auto slot = a.rows.slot(i);
    const E v = a.x[a.x_rows.element(i, a.rows.inner)];
    use_now(v);
    I at;
    if (a.rows.place(slot, at)) a.dst[at] = v;
  }
}

// What an IndexCopy node's launch is made of before its unit and index types are chosen.
struct IndexCopyPlan {
  int dim = 0;
  size_t unit = 1;      // bytes moved per thread step: the widest that the rows and pointers allow
  int64_t per_unit = 1;  // elements per unit
  int64_t units = 0;     // 0: nothing to copy
  bool narrow = false;   // 32-bit indices suffice
};
IndexCopyPlan plan_index_copy(const Node& n, const IndexCopyParams& p);

template <class E, class I>
IndexCopyArgs<E, I> index_copy_args(const Context& c, const Node& n, const IndexCopyParams& p,
                                    const IndexCopyPlan& plan) {
  const TensorRef &index = n.in[0], &x = n.in[1], &dst = n.out;
  return {static_cast<const E*>(x.data), static_cast<E*>(dst.data), static_cast<I>(plan.units),
          cache_rows<I>(dst, plan.dim, index, c.error_flag, plan.per_unit),
          SeqMajorRows<I>(p.x_seq_major, dst.shape[1], index.shape[0])};
}

}  // namespace etgpu::cuda
