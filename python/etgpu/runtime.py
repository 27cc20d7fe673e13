"""Running a .etgpu file from Python through the C API (libetgpu.so, via ctypes)."""

import ctypes
import json
import threading
from pathlib import Path
from typing import List, Sequence, Union

import torch

from etgpu._paths import library_path
from etgpu.dtypes import CODE_TO_TORCH, dtype_code

_MAX_RANK = 8
_lib = None


class EtGpuError(RuntimeError):
    """An error reported by the etgpu runtime (its message says what and where)."""


def _library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(library_path("libetgpu.so")))
        lib.etgpu_last_error.restype = ctypes.c_char_p
        lib.etgpu_open_file.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.etgpu_open_bytes.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                                         ctypes.POINTER(ctypes.c_void_p)]
        lib.etgpu_open_file_limited.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint64,
                                                ctypes.POINTER(ctypes.c_void_p)]
        lib.etgpu_open_bytes_limited.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_uint64,
                                                 ctypes.POINTER(ctypes.c_void_p)]
        lib.etgpu_close.argtypes = [ctypes.c_void_p]
        lib.etgpu_num_inputs.argtypes = [ctypes.c_void_p]
        lib.etgpu_num_outputs.argtypes = [ctypes.c_void_p]
        lib.etgpu_execute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                      ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_int32),
                                      ctypes.POINTER(ctypes.POINTER(ctypes.c_int64))]
        lib.etgpu_output_dtype.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int8)]
        lib.etgpu_output_shape.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int32),
                                           ctypes.POINTER(ctypes.c_int64)]
        lib.etgpu_read_output.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        lib.etgpu_stats_json.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.etgpu_stats_json.restype = ctypes.c_size_t
        _lib = lib
    return _lib


def _check(code: int) -> None:
    if code != 0:
        # errors="replace": a message may quote bytes of a corrupted file (e.g. a constant's key).
        raise EtGpuError(_library().etgpu_last_error().decode(errors="replace"))


def _input_dtype_code(index: int, tensor: torch.Tensor) -> int:
    try:
        return dtype_code(tensor.dtype)
    except TypeError:
        raise EtGpuError(f"input {index}: dtype {tensor.dtype} has no etgpu equivalent") from None


def _signature_arrays(tensors):
    """The C API's dtype codes, ranks and shape pointers for inputs like `tensors` (and the shape
    arrays the pointers point into, kept alive with them)."""
    n = len(tensors)
    dtypes = (ctypes.c_int8 * n)(*[_input_dtype_code(i, t) for i, t in enumerate(tensors)])
    ranks = (ctypes.c_int32 * n)(*[t.dim() for t in tensors])
    shape_arrays = [(ctypes.c_int64 * max(t.dim(), 1))(*t.shape) for t in tensors]
    shapes = (ctypes.POINTER(ctypes.c_int64) * n)(*[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_arrays])
    return dtypes, ranks, shapes, shape_arrays


class Model:
    """A loaded .etgpu program on an engine (device: "auto", "cuda" or "cpu").

    max_device_bytes caps the memory the program may ask for (0: ETGPU_MAX_DEVICE_BYTES or 256 GiB).
    One Model may be shared by threads: `run` holds the Model's lock from execute to the last
    output read, so each call gets its own results (calls on one Model run one at a time; ctypes
    releases the GIL, so different Models run in parallel)."""

    def __init__(self, source: Union[str, Path, bytes], device: str = "auto", max_device_bytes: int = 0):
        lib = _library()
        self._handle = ctypes.c_void_p()
        self._lock = threading.Lock()
        if isinstance(source, (bytes, bytearray)):
            buffer = ctypes.create_string_buffer(bytes(source), len(source))
            _check(lib.etgpu_open_bytes_limited(buffer, len(source), device.encode(), max_device_bytes,
                                                ctypes.byref(self._handle)))
        else:
            _check(lib.etgpu_open_file_limited(str(source).encode(), device.encode(), max_device_bytes,
                                               ctypes.byref(self._handle)))
        # Outputs of the CUDA engine land in page-locked host memory (torch's caching host
        # allocator reuses it): the device copies straight into them instead of through the
        # driver's staging buffer, a few tens of microseconds of a decode step's logits.
        self._pin_outputs = self.stats()["engine"] == "cuda" and torch.cuda.is_available()
        self._signatures = {}  # input signature -> the call's ctypes dtype, rank and shape arrays

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:  # never free the model under a run in another thread
            if self._handle:
                _library().etgpu_close(self._handle)
                self._handle = None

    def __del__(self):
        self.close()

    @property
    def num_inputs(self) -> int:
        return _library().etgpu_num_inputs(self._handle)

    @property
    def num_outputs(self) -> int:
        return _library().etgpu_num_outputs(self._handle)

    def stats(self) -> dict:
        lib = _library()
        size = lib.etgpu_stats_json(self._handle, None, 0)
        buffer = ctypes.create_string_buffer(size + 1)
        lib.etgpu_stats_json(self._handle, buffer, size + 1)
        return json.loads(buffer.value.decode())

    def run(self, inputs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        lib = _library()
        tensors = [t.detach().cpu().contiguous() for t in inputs]
        n = len(tensors)
        data = (ctypes.c_void_p * n)(*[t.data_ptr() for t in tensors])
        signature = tuple((t.dtype, t.shape) for t in tensors)
        arrays = self._signatures.get(signature)
        if arrays is None:
            if len(self._signatures) >= 64:  # (prompts of many lengths: keep the cache small)
                self._signatures.clear()
            arrays = self._signatures[signature] = _signature_arrays(tensors)
        dtypes, ranks, shapes, _ = arrays
        with self._lock:
            _check(lib.etgpu_execute(self._handle, n, data, dtypes, ranks, shapes))
            return [self._read_output(i) for i in range(self.num_outputs)]

    def _read_output(self, index: int) -> torch.Tensor:
        lib = _library()
        code = ctypes.c_int8()
        rank = ctypes.c_int32()
        shape = (ctypes.c_int64 * _MAX_RANK)()
        _check(lib.etgpu_output_dtype(self._handle, index, ctypes.byref(code)))
        _check(lib.etgpu_output_shape(self._handle, index, ctypes.byref(rank), shape))
        out = torch.empty([shape[d] for d in range(rank.value)], dtype=CODE_TO_TORCH[code.value],
                          pin_memory=self._pin_outputs)
        nbytes = out.numel() * out.element_size()
        if nbytes:  # an empty tensor has no storage to read into (its data_ptr is null)
            _check(lib.etgpu_read_output(self._handle, index, ctypes.c_void_p(out.data_ptr()), nbytes))
        return out


def load(path: Union[str, Path], device: str = "auto") -> Model:
    return Model(path, device)
