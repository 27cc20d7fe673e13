"""Huffman bytes: a lossless entropy coding of a U8 constant's bytes (HuffmanBytes in
schema/etgpu.fbs; byte layout in docs/quantization.md, decoder
runtime/src/program/huffman_bytes.cpp).

Quantized weights' codes are far from uniform: TorchAO's int4 codes of a normal weight cluster
around the zero point, so a byte (two codes) carries ~7.4 bits of information and an int8 code
~7.2. A canonical Huffman code over the 256 byte values, its lengths limited to MAX_CODE_BITS so
that the decoder's lookup table stays small, stores them in about that many bits. The bytes are
coded in independent chunks (CHUNK_BYTES decoded bytes each, byte-aligned, with a table of their
end offsets) so that the runtime decodes them on several threads and bounds-checks each one."""

import heapq
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

MAGIC = b"EHB"
VERSION = 1
MAX_CODE_BITS = 15
CHUNK_BYTES = 1 << 20
# magic, version, decoded bytes per chunk (u32), decoded byte count (u64); then the 256 code lengths
# and one u64 chunk end offset per chunk.
HEADER = struct.Struct("<3sBIQ")
LENGTHS_BYTES = 256
# Store the encoding only when it saves at least this fraction of the raw bytes: decoding costs
# load time, which a saving of a percent or two of a small tensor does not repay.
MIN_SAVING = 0.02


@dataclass(frozen=True)
class Layout:
    """What a payload's header declares."""
    chunk_bytes: int
    count: int
    lengths: np.ndarray  # the code length of each byte value, 0 when it does not occur

    @property
    def chunk_count(self) -> int:
        return -(-self.count // self.chunk_bytes)

    @property
    def stream_offset(self) -> int:
        """Where the chunks' bit streams start: after the header, lengths and offset table."""
        return HEADER.size + LENGTHS_BYTES + 8 * self.chunk_count


def _as_bytes(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().contiguous().reshape(-1).numpy()


def histogram(data: np.ndarray) -> np.ndarray:
    """How often each byte value occurs (int64[256]), counted a chunk at a time so that the
    temporary index arrays stay small."""
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, data.size, 16 * CHUNK_BYTES):
        counts += np.bincount(data[start:start + 16 * CHUNK_BYTES], minlength=256)
    return counts


def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Unlimited Huffman code lengths of the symbols with a nonzero count (heap of (weight,
    tie-break, symbols)); a lone symbol gets length 1 (a code needs at least one bit)."""
    lengths = np.zeros(256, dtype=np.int64)
    heap = [(int(c), s, [s]) for s, c in enumerate(counts) if c > 0]
    heapq.heapify(heap)
    if len(heap) == 1:
        lengths[heap[0][1]] = 1
    while len(heap) > 1:
        w1, t1, s1 = heapq.heappop(heap)
        w2, t2, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (w1 + w2, min(t1, t2), s1 + s2))
    return lengths


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Code lengths (uint8[256]) of a complete prefix code at most MAX_CODE_BITS long for these
    byte counts. When Huffman's lengths run longer, the counts are flattened (halved, keeping every
    present symbol at least 1) until they fit: rare symbols get a little shorter, at a cost of a
    fraction of a percent. A lone symbol is paired with a neighbour so that the code stays
    complete (each byte then costs one bit)."""
    counts = counts.astype(np.int64).copy()
    present = np.flatnonzero(counts)
    if present.size == 0:
        raise ValueError("Huffman bytes need at least one byte")
    if present.size == 1:
        counts[(present[0] + 1) % 256] = 1
    while True:
        lengths = _huffman_lengths(counts)
        if lengths.max() <= MAX_CODE_BITS:
            return lengths.astype(np.uint8)
        counts = np.where(counts > 0, np.maximum(counts >> 1, 1), 0)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each byte value (DEFLATE's assignment: shorter codes first, equal
    lengths in byte-value order, each code the previous one plus one), as uint64[256]."""
    codes = np.zeros(256, dtype=np.uint64)
    code, previous_length = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous_length
        previous_length = int(lengths[symbol])
        codes[symbol] = code
        code += 1
    return codes


def _reversed(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each code with its `length` bits in reverse order: the stream is written low bit first and
    a code's first (most significant) bit must come first."""
    return np.array([int(format(int(c), f"0{n}b")[::-1], 2) if n else 0 for c, n in zip(codes, lengths)],
                    dtype=np.uint64)


def _chunk_stream(chunk: np.ndarray, stream_codes: np.ndarray, lengths: np.ndarray) -> bytes:
    """One chunk's bit stream: the codes of its bytes back to back, stream bit j being bit j % 8
    of byte j // 8, zero-padded to a whole byte. Codes never overlap, so each 64-bit word is the
    sum of the codes that start in it (shifted into place) plus the spill of one that started in
    the word before."""
    bits = lengths[chunk].astype(np.int64)
    position = np.cumsum(bits) - bits
    total_bits = int(position[-1] + bits[-1])
    word = position >> 6
    shift = (position & 63).astype(np.uint64)
    code = stream_codes[chunk]
    words = np.zeros((total_bits + 63) // 64, dtype=np.uint64)
    starts = np.flatnonzero(np.diff(word, prepend=-1))  # a code starts in every word but maybe the last
    words[word[starts]] = np.add.reduceat(code << shift, starts)
    spill = np.flatnonzero(shift.astype(np.int64) + bits > 64)
    words[word[spill] + 1] |= code[spill] >> (np.uint64(64) - shift[spill])
    return words.astype("<u8").tobytes()[:(total_bits + 7) // 8]


def encoded_size(counts: np.ndarray, lengths: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> int:
    """An upper bound on encode()'s size from the byte counts alone (each chunk may pad up to 7
    bits): what encode_if_it_pays decides by, before any bit is written."""
    count = int(counts.sum())
    chunks = -(-count // chunk_bytes)
    stream_bits = int((counts * lengths.astype(np.int64)).sum())
    return HEADER.size + LENGTHS_BYTES + 8 * chunks + (stream_bits + 7) // 8 + chunks


def encode(tensor: torch.Tensor, chunk_bytes: int = CHUNK_BYTES, lengths: Optional[np.ndarray] = None) -> bytes:
    """The Huffman-bytes payload of a non-empty uint8 tensor, whether or not it is smaller than
    the tensor's own bytes (encode_if_it_pays decides what is stored)."""
    if tensor.dtype != torch.uint8 or tensor.numel() == 0:
        raise ValueError(f"Huffman bytes take a non-empty uint8 tensor, not {tensor.dtype}[{tensor.numel()}]")
    data = _as_bytes(tensor)
    lengths = code_lengths(histogram(data)) if lengths is None else lengths
    stream_codes = _reversed(canonical_codes(lengths), lengths)
    streams = [_chunk_stream(data[start:start + chunk_bytes], stream_codes, lengths)
               for start in range(0, data.size, chunk_bytes)]
    ends = np.cumsum([len(s) for s in streams], dtype=np.uint64)
    header = HEADER.pack(MAGIC, VERSION, chunk_bytes, data.size)
    return b"".join([header, lengths.tobytes(), ends.astype("<u8").tobytes(), *streams])


def encode_if_it_pays(tensor: torch.Tensor) -> Optional[bytes]:
    """encode(tensor) when that saves at least MIN_SAVING of a uint8 tensor's bytes, else None
    (store raw)."""
    if tensor.dtype != torch.uint8 or tensor.numel() == 0:
        return None
    counts = histogram(_as_bytes(tensor))
    lengths = code_lengths(counts)
    if encoded_size(counts, lengths) > (1 - MIN_SAVING) * tensor.numel():
        return None
    return encode(tensor, lengths=lengths)


def read_header(data: bytes) -> Optional[Layout]:
    """The layout a Huffman-bytes payload's header declares (None when it is not one): what the
    tests and fuzz seeds read back."""
    if len(data) < HEADER.size + LENGTHS_BYTES:
        return None
    magic, version, chunk_bytes, count = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or chunk_bytes == 0:
        return None
    lengths = np.frombuffer(data, dtype=np.uint8, count=LENGTHS_BYTES, offset=HEADER.size).copy()
    return Layout(chunk_bytes, count, lengths)
