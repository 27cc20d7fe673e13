"""Shared test helpers. Each op test compares etgpu against PyTorch eager on random (non-zero)
inputs. The engine under test is ETGPU_TEST_DEVICE (default cpu; the GPU script sets cuda)."""

import contextlib
import fcntl
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import TEST_DEVICE  # noqa: E402


def pytest_report_header(config):
    return f"etgpu engine under test: {TEST_DEVICE}"


# Tests that read the whole GPU's free memory (cudaMemGetInfo counts every process) must not run
# while another pytest-xdist worker allocates on it: each CUDA-engine test holds a lock shared, a
# test that asks for `gpu_alone` holds it alone. A second lock, the turnstile, is passed through
# on the way in, so a test waiting to be alone stops new sharers and is not starved.
_LOCKS = Path(tempfile.gettempdir()) / "etgpu-tests-gpu"


@contextlib.contextmanager
def _gpu_lock(mode):
    with open(f"{_LOCKS}.turnstile", "a") as turnstile, open(f"{_LOCKS}.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, mode)
        if mode == fcntl.LOCK_SH:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


@pytest.fixture(autouse=True)
def _gpu_shared(request):
    if TEST_DEVICE != "cuda" or "gpu_alone" in request.fixturenames:
        yield
        return
    with _gpu_lock(fcntl.LOCK_SH):
        yield


@pytest.fixture
def gpu_alone():
    """No other test of this run uses the GPU while the requesting test runs."""
    with _gpu_lock(fcntl.LOCK_EX):
        yield


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
