// A kernel that only reads: quant_gemv_bench's floor for the GEMV (what any one-launch kernel
// that reads a weight's bytes costs at least, at that size, on this GPU).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

// Enqueues one launch that reads `bytes` at `data` (16-byte aligned) with 16-byte loads, four in
// flight per thread, and decodes and stores nothing.
cudaError_t launch_read_only(const void* data, size_t bytes, cudaStream_t stream);
