// Huffman bytes: the lossless entropy coding of U8 constants (ConstantEncoding::HuffmanBytes in
// schema/etgpu.fbs; byte layout in docs/quantization.md, "Huffman bytes"; the encoder is
// python/etgpu/huffman_bytes.py). Quantized weights' codes are stored this way and decoded here,
// at load time, into exactly the packed code bytes the kernels read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "etgpu/status.h"

namespace etgpu {

// Decodes a HuffmanBytes payload of `stored_size` bytes into `out`, which has room for exactly
// `out_bytes` bytes. The payload is untrusted: its header (decoded size == `out_bytes`, code
// lengths forming a complete prefix code of at most 15 bits, chunk end offsets non-decreasing and
// ending exactly at the payload's end) is checked before anything is written, and each chunk's bit
// stream must decode to exactly its bytes, so a corrupt or truncated payload is an error, never a
// read or write out of bounds. Chunks are decoded on up to `max_threads` threads (0: as many as
// the hardware has), never more than there are chunks.
Status decode_huffman_bytes(const uint8_t* stored, size_t stored_size, void* out, size_t out_bytes,
                            unsigned max_threads = 0);

}  // namespace etgpu
