// The time floor of reading bytes in one launch (quant_gemv_bench's reference for the GEMV).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

// Median microseconds of one launch of a kernel that only reads `bytes` (16-byte loads, four in
// flight per thread, nothing decoded or stored), timed like the GEMV: a CUDA graph of `copies`
// launches over disjoint regions. What any one-launch kernel that reads these bytes costs at
// least, at this size, on this GPU.
double read_only_us(cudaStream_t stream, size_t bytes, int copies);
