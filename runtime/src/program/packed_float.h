// Packed float: the lossless compact encoding of float constants (ConstantEncoding::PackedFloat
// in schema/etgpu.fbs; byte layout in docs/quantization.md, "Packed float"; the encoder is
// python/etgpu/packed_float.py). Quantization scales are stored this way and decoded here, at
// load time, into exactly the bf16/f16/f32 array the kernels read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "etgpu/status.h"
#include "etgpu_generated.h"

namespace etgpu {

// Decodes a PackedFloat payload of `stored_size` bytes into `out`, which has room for exactly
// `out_bytes` bytes of `dtype` (F32, F16 or BF16) elements. The payload is untrusted: its header
// is checked against the dtype and `out_bytes`, and its length against the header, before any
// element is read, so a corrupt or truncated payload is an error, never a read or write out of
// bounds. `out` needs the alignment of `dtype`.
Status decode_packed_float(const uint8_t* stored, size_t stored_size, ir::DType dtype, void* out,
                           size_t out_bytes);

}  // namespace etgpu
