"""Device faults. A program that needs more than the GPU's free memory fails init with a message and
holds no memory afterwards. Failures inside execute (the inputs pass every host-side check, a
kernel then finds a bad value) are reported as EtGpuError and the model stays usable, its next valid call correct — including
when the failing step is a replayed CUDA graph. A fault that poisons the CUDA context (sticky)
makes the model say it is unusable, every later call too, and close still works.

Each test runs on the CPU engine and, under ETGPU_TEST_DEVICE=cuda, on the CUDA engine."""

import functools
import subprocess
import sys
import textwrap

import pytest
import torch

import etgpu
from etgpu.llm import build_hf_model, export_llm
from models import edited
from parity import TEST_DEVICE, Fn, export, rel_err

needs_cuda = pytest.mark.skipif(TEST_DEVICE != "cuda", reason="needs the CUDA engine (ETGPU_TEST_DEVICE=cuda)")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
MAX_SEQ = 8
MIB = 1 << 20


@functools.lru_cache(maxsize=None)
def index_program() -> bytes:
    return etgpu.compile(export(Fn(lambda x, i: torch.index_select(x, 0, i) * 2),
                                (torch.randn(5, 3), torch.tensor([1, 2]))))


@functools.lru_cache(maxsize=None)
def llm_program() -> bytes:
    return etgpu.compile(export_llm(build_hf_model("llama3.2-1b", "tiny", seed=0), MAX_SEQ))


@needs_cuda
def test_program_larger_than_free_gpu_memory_fails_init_and_holds_nothing(gpu_alone):
    etgpu.Model(index_program(), device="cuda").close()  # kernel modules stay loaded: the baseline
    free_before, total = torch.cuda.mem_get_info()

    def edit(g):
        g.arenaBytes = total + (1 << 30)  # more than the whole GPU, under the cap given below
    with pytest.raises(etgpu.runtime.EtGpuError, match="cannot allocate .* bytes of device memory"):
        etgpu.Model(edited(index_program(), edit), device="cuda", max_device_bytes=2 * total)
    free_after, _ = torch.cuda.mem_get_info()
    assert abs(free_after - free_before) <= 4 * MIB, (free_before, free_after)
    x = torch.randn(5, 3)
    assert torch.equal(run_index(etgpu.Model(index_program(), device="cuda"), x, torch.tensor([0, 4])),
                       x[[0, 4]] * 2)


def run_index(model, x, i):
    return model.run([x, i])[0]


@pytest.mark.parametrize("device", DEVICES)
def test_index_fault_inside_a_replayed_step_then_recovers(device):
    model = etgpu.Model(index_program(), device=device)
    x = torch.randn(5, 3)
    for _ in range(3):  # eager, captured, replayed on the CUDA engine
        assert torch.equal(run_index(model, x, torch.tensor([4, 0])), x[[4, 0]] * 2)
    replayed = model.stats()["steps_replayed"]
    with pytest.raises(etgpu.runtime.EtGpuError, match="out of range"):
        run_index(model, x, torch.tensor([1, 9]))
    if device == "cuda":
        assert model.stats()["steps_replayed"] == replayed + 1, "the failing step was not a graph replay"
    y = torch.randn(5, 3)
    assert torch.equal(run_index(model, y, torch.tensor([3, -5])), y[[3, 0]] * 2)


def decode(model, tokens, first_position):
    """Logits of each single-token step, at positions first_position, first_position + 1, ..."""
    return [model.run([tokens[:, k:k + 1], torch.tensor([first_position + k])])[0] for k in range(tokens.shape[1])]


@pytest.mark.parametrize("device", DEVICES)
def test_cache_position_fault_inside_decode_keeps_the_cache(device):
    tokens = torch.randint(0, 512, (1, MAX_SEQ), generator=torch.Generator().manual_seed(3))
    expected = decode(etgpu.Model(llm_program(), device=device), tokens, 0)
    model = etgpu.Model(llm_program(), device=device)
    actual = decode(model, tokens[:, :4], 0)  # steps 1..3 capture and replay on the CUDA engine
    with pytest.raises(etgpu.runtime.EtGpuError, match="outside|out of range"):
        model.run([tokens[:, 4:5], torch.tensor([MAX_SEQ])])  # same shapes: a replay on CUDA
    actual += decode(model, tokens[:, 4:], 4)
    assert max(rel_err(a, e) for a, e in zip(actual, expected)) <= 1e-5


STICKY_FAULT = textwrap.dedent("""
    import os, sys, torch, etgpu
    model = etgpu.Model(sys.argv[1], device="cuda")
    x, i = torch.randn(5, 3), torch.tensor([1, 2])
    assert torch.equal(model.run([x, i])[0], x[[1, 2]] * 2)
    try:  # an out-of-bounds index in a torch kernel: a device-side assert, sticky for the process
        torch.zeros(2, device="cuda")[torch.tensor([5], device="cuda")].sum().item()
    except RuntimeError as e:
        print("TORCH", str(e).splitlines()[0])
    for _ in range(2):
        try:
            model.run([x, i])
            print("RAN")
        except etgpu.runtime.EtGpuError as e:
            print("ERROR", e)
    model.close()
    print("CLOSED", flush=True)
    os._exit(0)  # torch's own teardown on a poisoned context is not under test
""")


@needs_cuda
def test_sticky_device_fault_makes_the_model_say_it_is_unusable(tmp_path):
    path = tmp_path / "index.etgpu"
    path.write_bytes(index_program())
    done = subprocess.run([sys.executable, "-c", STICKY_FAULT, str(path)], capture_output=True, text=True,
                          timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 2 and "RAN" not in lines, done.stdout
    assert "unusable from now on" in errors[0] and "sticky" in errors[0], errors[0]
    assert errors[1].startswith("ERROR the model is unusable"), errors[1]
    assert lines[-1] == "CLOSED"
