#include "read_floor.h"

namespace {

// XORs every loaded word into one value, stored only if it equals a constant no fill produces,
// so the loads stay and nothing is written.
__global__ void read_only_kernel(const uint4* data, size_t count, unsigned* sink) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  unsigned acc = 0;
  for (; i + 3 * stride < count; i += 4 * stride) {
    const uint4 a = __ldg(data + i), b = __ldg(data + i + stride), c = __ldg(data + i + 2 * stride),
                d = __ldg(data + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < count; i += stride) {
    const uint4 a = __ldg(data + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u && sink) *sink = acc;
}

}  // namespace

cudaError_t launch_read_only(const void* data, size_t bytes, cudaStream_t stream) {
  static const int sms = [] {
    int device = 0, count = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
    return count;
  }();
  // 4 blocks of 512 threads per SM: every SM's threads, each with four loads in flight. The sink
  // is never written (no fill of these bytes XORs to the constant), so null is fine.
  read_only_kernel<<<4 * sms, 512, 0, stream>>>(static_cast<const uint4*>(data), bytes / 16, nullptr);
  return cudaGetLastError();
}
