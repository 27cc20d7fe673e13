"""Shared test helpers. Each op test compares etgpu against PyTorch eager on random (non-zero)
inputs. The engine under test is ETGPU_TEST_DEVICE (default cpu; the GPU script sets cuda)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity import TEST_DEVICE  # noqa: E402


def pytest_report_header(config):
    return f"etgpu engine under test: {TEST_DEVICE}"


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
