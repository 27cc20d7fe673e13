"""Bad inputs at run time: each raises EtGpuError naming the input and expected vs actual, and
the same Model then still returns correct results for a valid call. Also corrupted and truncated
.etgpu files: always EtGpuError, never a crash."""

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import etgpu
from etgpu.runtime import EtGpuError
from models import SEQ_MAX, elementwise_program, elementwise_reference, linear_module, linear_program
from parity import assert_close

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return etgpu.Model(elementwise_program(), device="cpu")


def valid_inputs(seq=5):
    return [torch.randn(seq, 3), torch.randn(seq, 3)]


def check_valid_call(model):
    """The Model is still usable and correct after a rejected call."""
    x, y = valid_inputs(7)
    for actual, expected in zip(model.run([x, y]), elementwise_reference(x, y)):
        assert_close(actual, expected)


BAD_CALLS = {
    # name: (inputs, regex the message must match)
    "dtype": (lambda: [torch.randn(5, 3).half(), torch.randn(5, 3)],
              r"input 0 \('x'\): expected dtype float32, got float16"),
    "integer_dtype": (lambda: [torch.randn(5, 3), torch.ones(5, 3, dtype=torch.int64)],
                      r"input 1 \('y'\): expected dtype float32, got int64"),
    "rank": (lambda: [torch.randn(5, 3, 1), torch.randn(5, 3)], r"input 0 \('x'\): expected rank 2, got 3"),
    "scalar_rank": (lambda: [torch.randn(5, 3), torch.tensor(1.0)], r"input 1 \('y'\): expected rank 2, got 0"),
    "static_dim": (lambda: [torch.randn(5, 4), torch.randn(5, 4)], r"input 0 \('x'\): dim 1 is 4, expected 3"),
    "dims_disagree": (lambda: [torch.randn(5, 3), torch.randn(6, 3)], r"input 1 \('y'\): dim 0 is 6, expected 5"),
    "above_bound": (lambda: valid_inputs(SEQ_MAX + 1),
                    rf"input 0 \('x'\) dim 0: size {SEQ_MAX + 1} .*outside its bounds \[3, {SEQ_MAX}\]"),
    "below_bound": (lambda: valid_inputs(2), r"input 0 \('x'\) dim 0: size 2 .*outside its bounds \[3, "),
    "empty": (lambda: valid_inputs(0), r"input 0 \('x'\) dim 0: size 0 .*outside its bounds"),
    "too_few": (lambda: [torch.randn(5, 3)], r"expected 2 inputs, got 1"),
    "too_many": (lambda: valid_inputs() + [torch.randn(5, 3)], r"expected 2 inputs, got 3"),
    "none": (lambda: [], r"expected 2 inputs, got 0"),
    "unsupported_dtype": (lambda: [torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3)],
                          r"input 0: dtype torch.float64 has no etgpu equivalent"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_call_raises_and_model_recovers(model, case):
    make_inputs, pattern = BAD_CALLS[case]
    with pytest.raises(EtGpuError) as info:
        model.run(make_inputs())
    assert re.search(pattern, str(info.value)), str(info.value)
    check_valid_call(model)


def test_bad_call_after_other_shape_keeps_results(model):
    """A rejected call between two valid ones of different shapes leaves no stale state."""
    x, y = valid_inputs(SEQ_MAX)
    model.run([x, y])
    with pytest.raises(EtGpuError):
        model.run([torch.randn(3, 3), torch.randn(4, 3)])
    check_valid_call(model)


@pytest.mark.parametrize("special", ["nan", "inf", "-inf", "mixed"])
def test_nan_and_inf_computed_through(model, special):
    x, y = valid_inputs(9)
    if special == "mixed":
        x[0, 0], x[3, 1], y[5, 2], y[7, 0] = float("nan"), float("inf"), float("-inf"), float("nan")
    else:
        x[::2, 1] = float(special)
        y[1, :] = float(special)
    actual = model.run([x, y])
    expected = elementwise_reference(x, y)
    for a, e in zip(actual, expected):
        assert torch.equal(torch.isnan(a), torch.isnan(e)), "NaN positions differ"
        assert torch.equal(torch.isinf(a), torch.isinf(e)) and torch.equal(a[torch.isinf(e)], e[torch.isinf(e)])
        finite = torch.isfinite(e)
        assert_close(a[finite], e[finite])


def test_input_aliasing_output_and_each_other(model):
    """Inputs that share memory with each other or with a previous output are read correctly:
    the runtime copies inputs in before any instruction writes."""
    x = torch.randn(6, 3)
    first = model.run([x, x])
    assert_close(first[0], elementwise_reference(x, x)[0])
    reused = first[1]  # an output buffer fed back as both inputs
    second = model.run([reused, reused])
    for a, e in zip(second, elementwise_reference(reused, reused)):
        assert_close(a, e)
    wide = torch.randn(3, 6)
    view = wide.t()  # non-contiguous view; y overlaps its storage
    for a, e in zip(model.run([view, wide.t()[:, :]]), elementwise_reference(view, view)):
        assert_close(a, e)


def test_max_device_bytes_cap():
    data = linear_program()
    with pytest.raises(EtGpuError, match=r"bytes of device memory.*cap|cap is 64"):
        etgpu.Model(data, device="cpu", max_device_bytes=64)
    etgpu.Model(data, device="cpu", max_device_bytes=1 << 20).run([torch.randn(4, 3)])


def test_max_device_bytes_env():
    code = ("import etgpu, sys\n"
            "from etgpu.runtime import EtGpuError\n"
            "try:\n    etgpu.Model(open(sys.argv[1], 'rb').read(), device='cpu')\n"
            "except EtGpuError as e:\n    print('REFUSED', e)\n")
    path = Path(__file__).parent / "_linear.etgpu"
    path.write_bytes(linear_program())
    try:
        env = dict(__import__("os").environ, ETGPU_MAX_DEVICE_BYTES="100")
        out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
    finally:
        path.unlink()
    assert out.returncode == 0, out.stderr
    assert "REFUSED" in out.stdout and "more than 100 bytes" in out.stdout, out.stdout


def _try_file(data: bytes, x: torch.Tensor):
    """Loads and runs `data`; returns 'refused', or 'ran'. Anything but EtGpuError propagates."""
    try:
        model = etgpu.Model(data, device="cpu")
    except EtGpuError:
        return "refused"
    try:
        model.run([x])
    except EtGpuError:
        return "refused"
    return "ran"


def _used_bytes(data: bytes) -> int:
    """End of the last byte the container's header points at (the rest is alignment padding)."""
    payload_offset, payload_size, count = struct.unpack_from("<QQQ", data, 8)
    end, pos = payload_offset + payload_size, 32
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, pos)
        offset, size = struct.unpack_from("<QQ", data, pos + 4 + length)
        end, pos = max(end, offset + size), pos + 20 + length
    return end


def test_truncated_files_are_refused():
    data = linear_program()
    used = _used_bytes(data)
    x = torch.randn(4, 3)
    lengths = sorted(set(range(0, used, 7)) | {0, 1, 7, 8, 31, 32, used - 1})
    for length in lengths:
        assert _try_file(data[:length], x) == "refused", f"truncated to {length} bytes"
    assert _try_file(data[:used], x) == "ran"  # only padding removed


def test_byte_flips_never_crash():
    """Every byte of a real file flipped in turn: each load is refused or runs; none crashes.
    (A flip inside weights or an unused field legitimately still runs.)"""
    data = linear_program()
    x = torch.randn(4, 3)
    outcomes = {"refused": 0, "ran": 0}
    for position in range(len(data)):
        for mask in (0xFF, 0x01):
            corrupted = bytearray(data)
            corrupted[position] ^= mask
            outcomes[_try_file(bytes(corrupted), x)] += 1
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes
    expected = linear_module()(x)
    assert_close(etgpu.Model(data, device="cpu").run([x])[0], expected.detach())


CHILD = """
import sys, torch, etgpu
from etgpu.runtime import EtGpuError
data = open(sys.argv[1], 'rb').read()
for spec in sys.argv[2:]:
    pos, mask = map(int, spec.split(':'))
    bad = bytearray(data); bad[pos] ^= mask
    try:
        etgpu.Model(bytes(bad), device='cpu').run([torch.randn(4, 3)])
    except EtGpuError:
        pass
print('SURVIVED', len(sys.argv) - 2)
"""


def test_corrupted_files_in_subprocess(tmp_path):
    """The same corruption in a separate process: proves a bad file cannot kill the process
    (a segfault would pass unnoticed by an in-process test only if the test runner died too)."""
    data = linear_program()
    path = tmp_path / "model.etgpu"
    path.write_bytes(data)
    specs = [f"{p}:{m}" for p in range(0, len(data), max(1, len(data) // 64)) for m in (0xFF, 0x80)]
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), *specs], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"SURVIVED {len(specs)}" in out.stdout
