#include "program/huffman_bytes.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace etgpu {
namespace {

constexpr uint8_t kMagic[3] = {'E', 'H', 'B'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 16;   // magic, version, chunk size (u32), decoded size (u64)
constexpr size_t kLengthsBytes = 256;  // one code length per byte value
constexpr size_t kTableStart = kHeaderBytes + kLengthsBytes;
constexpr int kMaxCodeBits = 15;

uint32_t read_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

uint64_t read_u64(const uint8_t* p) { return uint64_t{read_u32(p)} | uint64_t{read_u32(p + 4)} << 32; }

// The header's facts, once checked (layout: docs/quantization.md).
struct Header {
  uint64_t chunk_bytes = 0;  // decoded bytes per chunk (the last may hold fewer)
  uint64_t count = 0;        // decoded bytes in all
  uint64_t chunk_count = 0;
  const uint8_t* lengths = nullptr;
  const uint8_t* chunk_ends = nullptr;  // chunk_count u64 offsets into the stream
  const uint8_t* stream = nullptr;
  uint64_t stream_size = 0;
  uint64_t chunk_begin(uint64_t c) const { return c == 0 ? 0 : read_u64(chunk_ends + 8 * (c - 1)); }
  uint64_t chunk_end(uint64_t c) const { return read_u64(chunk_ends + 8 * c); }
  uint64_t chunk_out_bytes(uint64_t c) const { return std::min(chunk_bytes, count - c * chunk_bytes); }
};

Result<Header> read_header(const uint8_t* p, size_t size, size_t out_bytes) {
  ETGPU_CHECK(size >= kTableStart, "huffman-bytes payload of ", size, " bytes is shorter than its ", kTableStart,
              "-byte header (truncated)");
  ETGPU_CHECK(std::memcmp(p, kMagic, sizeof(kMagic)) == 0, "huffman-bytes payload has a bad magic");
  ETGPU_CHECK(p[3] == kVersion, "huffman-bytes version ", int{p[3]}, " is not supported (this runtime reads ",
              int{kVersion}, ")");
  Header h;
  h.chunk_bytes = read_u32(p + 4);
  h.count = read_u64(p + 8);
  ETGPU_CHECK(h.chunk_bytes > 0, "huffman-bytes chunk size is 0");
  ETGPU_CHECK(h.count == out_bytes, "huffman-bytes payload decodes to ", h.count, " bytes; the tensor has ",
              out_bytes);
  h.chunk_count = h.count / h.chunk_bytes + (h.count % h.chunk_bytes != 0);
  ETGPU_CHECK(h.chunk_count <= (size - kTableStart) / 8, "huffman-bytes payload of ", size,
              " bytes cannot hold its ", h.chunk_count, " chunk offsets (truncated)");
  h.lengths = p + kHeaderBytes;
  h.chunk_ends = p + kTableStart;
  h.stream = h.chunk_ends + 8 * h.chunk_count;
  h.stream_size = size - kTableStart - 8 * h.chunk_count;
  return h;
}

// Every chunk lies inside the stream, after the one before it, and the last ends where the
// payload does.
Status check_chunk_ends(const Header& h) {
  uint64_t previous = 0;
  for (uint64_t c = 0; c < h.chunk_count; ++c) {
    const uint64_t end = h.chunk_end(c);
    ETGPU_CHECK(end >= previous, "huffman-bytes chunk ", c, " ends at stream byte ", end, ", before the ",
                previous, " where the chunk before it ends");
    ETGPU_CHECK(end <= h.stream_size, "huffman-bytes chunk ", c, " ends at stream byte ", end, ", past the ",
                h.stream_size, " stream bytes the payload holds (truncated)");
    previous = end;
  }
  ETGPU_CHECK(previous == h.stream_size, "huffman-bytes chunks end at stream byte ", previous,
              " but the payload holds ", h.stream_size, " (trailing bytes)");
  return Status::ok();
}

// A lookup table indexed by the stream's next `bits` bits (low bit first): entry = byte value |
// code length << 8. A complete prefix code fills every entry, so decoding never meets a hole.
struct DecodeTable {
  int bits = 0;
  std::vector<uint16_t> entries;
};

uint32_t reverse_bits(uint32_t code, int length) {
  uint32_t reversed = 0;
  for (int i = 0; i < length; ++i) reversed |= (code >> i & 1u) << (length - 1 - i);
  return reversed;
}

// The lengths must describe a complete prefix code (Kraft sum exactly 1): over-subscribed lengths
// are no prefix code, and incomplete ones leave bit patterns that decode to nothing.
Status check_code_lengths(const uint8_t* lengths, int* max_length) {
  uint32_t kraft = 0;  // in units of 2^-kMaxCodeBits; at most 256 * 2^14, no overflow
  *max_length = 0;
  for (int v = 0; v < 256; ++v) {
    ETGPU_CHECK(lengths[v] <= kMaxCodeBits, "huffman-bytes code length of byte ", v, " is ", int{lengths[v]},
                "; at most ", kMaxCodeBits, " bits are allowed");
    if (lengths[v] == 0) continue;
    kraft += uint32_t{1} << (kMaxCodeBits - lengths[v]);
    *max_length = std::max(*max_length, int{lengths[v]});
  }
  ETGPU_CHECK(kraft <= (uint32_t{1} << kMaxCodeBits),
              "huffman-bytes code lengths are over-subscribed (no prefix code)");
  ETGPU_CHECK(kraft == (uint32_t{1} << kMaxCodeBits),
              "huffman-bytes code lengths are incomplete (some bit patterns decode to no byte)");
  return Status::ok();
}

// DEFLATE's canonical assignment: shorter codes first, equal lengths in byte-value order. The
// stream holds each code first bit first, low bit first, so the table is indexed by reversed codes.
Result<DecodeTable> build_table(const uint8_t* lengths) {
  DecodeTable table;
  ETGPU_RETURN_IF_ERROR(check_code_lengths(lengths, &table.bits));
  uint32_t per_length[kMaxCodeBits + 1] = {}, next_code[kMaxCodeBits + 1] = {};
  for (int v = 0; v < 256; ++v) per_length[lengths[v]]++;
  per_length[0] = 0;
  for (int length = 1, code = 0; length <= kMaxCodeBits; ++length) {
    code = (code + per_length[length - 1]) << 1;
    next_code[length] = code;
  }
  table.entries.resize(size_t{1} << table.bits);
  for (int v = 0; v < 256; ++v) {
    const int length = lengths[v];
    if (length == 0) continue;
    const uint16_t entry = static_cast<uint16_t>(v | length << 8);
    for (size_t i = reverse_bits(next_code[length]++, length); i < table.entries.size(); i += size_t{1} << length) {
      table.entries[i] = entry;
    }
  }
  return table;
}

uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // every target this builds for is little-endian (flatbuffers' layout assumes it too)
}

// Why a chunk's bit stream is not exactly the codes of its bytes.
enum class ChunkFault : uint8_t { kNone, kEndsInsideACode, kBitsLeftOver, kNonzeroPadding };

// Decodes a chunk's `n` bytes from [in, end). The fast loop refills the bit buffer with one 8-byte
// load (to >= 56 bits: three codes of <= 15 bits) while 8 bytes remain; the tail reads a byte at a
// time, so nothing past `end` is ever read.
ChunkFault decode_chunk(const DecodeTable& table, const uint8_t* in, const uint8_t* end, uint8_t* out, uint64_t n) {
  const uint16_t* entries = table.entries.data();
  const uint64_t mask = (uint64_t{1} << table.bits) - 1;
  uint64_t buffer = 0;  // stream bits from the next unused one up; the low `held` are valid
  int held = 0;
  uint64_t i = 0;
  while (n - i >= 3 && end - in >= 8) {
    buffer |= load_le64(in) << held;
    in += (63 - held) >> 3;
    held |= 56;
    for (int k = 0; k < 3; ++k) {
      const uint16_t entry = entries[buffer & mask];
      out[i++] = static_cast<uint8_t>(entry);
      buffer >>= entry >> 8;
      held -= entry >> 8;
    }
  }
  while (i < n) {
    for (; held <= 56 && in < end; held += 8) buffer |= uint64_t{*in++} << held;
    const uint16_t entry = entries[buffer & mask];
    const int length = entry >> 8;
    if (length > held) return ChunkFault::kEndsInsideACode;
    out[i++] = static_cast<uint8_t>(entry);
    buffer >>= length;
    held -= length;
  }
  if (in != end || held >= 8) return ChunkFault::kBitsLeftOver;
  return (buffer & ((uint64_t{1} << held) - 1)) == 0 ? ChunkFault::kNone : ChunkFault::kNonzeroPadding;
}

const char* describe(ChunkFault fault) {
  switch (fault) {
    case ChunkFault::kEndsInsideACode: return "its bit stream ends inside a code (too few bits)";
    case ChunkFault::kBitsLeftOver: return "whole bytes of its bit stream are left over (too many bits)";
    case ChunkFault::kNonzeroPadding: return "the padding bits after its last code are not zero";
    case ChunkFault::kNone: break;
  }
  return "";
}

// Chunks are handed out in order through a shared counter to the calling thread and up to
// max_threads - 1 helpers; each records its own fault, and the first faulty chunk is reported.
Status decode_chunks(const Header& h, const DecodeTable& table, uint8_t* out, unsigned max_threads) {
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const uint64_t threads = std::min<uint64_t>(max_threads == 0 ? hardware : std::min(max_threads, hardware),
                                              h.chunk_count);
  std::vector<ChunkFault> faults(h.chunk_count, ChunkFault::kNone);
  std::atomic<uint64_t> next{0};
  auto work = [&] {
    for (uint64_t c = next++; c < h.chunk_count; c = next++) {
      faults[c] = decode_chunk(table, h.stream + h.chunk_begin(c), h.stream + h.chunk_end(c), out + c * h.chunk_bytes,
                               h.chunk_out_bytes(c));
    }
  };
  std::vector<std::thread> helpers;
  for (uint64_t t = 1; t < threads; ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones running (and this one) take every chunk
    }
  }
  work();
  for (std::thread& helper : helpers) helper.join();
  for (uint64_t c = 0; c < h.chunk_count; ++c) {
    ETGPU_CHECK(faults[c] == ChunkFault::kNone, "huffman-bytes chunk ", c, " of ", h.chunk_count, " (stream bytes ",
                h.chunk_begin(c), "..", h.chunk_end(c), ") does not decode to its ", h.chunk_out_bytes(c),
                " bytes: ", describe(faults[c]));
  }
  return Status::ok();
}

}  // namespace

Status decode_huffman_bytes(const uint8_t* stored, size_t stored_size, void* out, size_t out_bytes,
                            unsigned max_threads) {
  auto header = read_header(stored, stored_size, out_bytes);
  ETGPU_RETURN_IF_ERROR(header.status());
  ETGPU_RETURN_IF_ERROR(check_chunk_ends(header.value()));
  auto table = build_table(header.value().lengths);
  ETGPU_RETURN_IF_ERROR(table.status());
  return decode_chunks(header.value(), table.value(), static_cast<uint8_t*>(out), max_threads);
}

}  // namespace etgpu
