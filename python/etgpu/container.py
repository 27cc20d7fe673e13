"""Writing the .etgpu container (layout documented in runtime/src/program/container.h)."""

import struct
from pathlib import Path
from typing import Dict, Union

MAGIC = b"ETGPUF01"
ALIGNMENT = 64


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def pack(payload: bytes, constants: Dict[str, bytes]) -> bytes:
    keys = sorted(constants)
    table_size = sum(4 + len(k.encode()) + 16 for k in keys)
    cursor = _align(len(MAGIC) + 24 + table_size)
    payload_offset = cursor
    cursor = _align(cursor + len(payload))
    offsets = {}
    for key in keys:
        offsets[key] = cursor
        cursor = _align(cursor + len(constants[key]))
    out = bytearray(cursor)
    header = MAGIC + struct.pack("<QQQ", payload_offset, len(payload), len(keys))
    for key in keys:
        encoded = key.encode()
        header += struct.pack("<I", len(encoded)) + encoded + struct.pack("<QQ", offsets[key], len(constants[key]))
    out[:len(header)] = header
    out[payload_offset:payload_offset + len(payload)] = payload
    for key in keys:
        out[offsets[key]:offsets[key] + len(constants[key])] = constants[key]
    return bytes(out)


def write(path: Union[str, Path], payload: bytes, constants: Dict[str, bytes]) -> int:
    data = pack(payload, constants)
    Path(path).write_bytes(data)
    return len(data)


def unpack(data: bytes):
    """(payload, {key: bytes}) of a container (for inspection tools)."""
    if data[:8] != MAGIC:
        raise ValueError("not an .etgpu file")
    payload_offset, payload_size, count = struct.unpack_from("<QQQ", data, 8)
    pos = 32
    constants = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, pos)
        key = data[pos + 4:pos + 4 + length].decode()
        offset, size = struct.unpack_from("<QQ", data, pos + 4 + length)
        constants[key] = data[offset:offset + size]
        pos += 4 + length + 16
    return data[payload_offset:payload_offset + payload_size], constants
