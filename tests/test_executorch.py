"""The ExecuTorch flow end to end: partition + lower with EtGpuPartitioner, serialize a .pte,
run it with executorch.runtime (and the C++ etgpu_run tool)."""

import os
import subprocess

import pytest
import torch

from parity import Fn, PteProgram, assert_close, export, pte_path_enabled, randn

pytestmark = pytest.mark.skipif(not pte_path_enabled(), reason="executorch not importable or ETGPU_TEST_PTE=0")


class MlpWithCumsum(torch.nn.Module):
    """cumsum has no etgpu rule: it must stay on ExecuTorch's CPU kernels between two delegates."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.b(torch.cumsum(h, dim=-1) * 0.1) + 1.0


def test_partial_delegation_runs_unsupported_op_on_cpu():
    from etgpu.lower.registry import lookup

    assert lookup(torch.ops.aten.cumsum.default) is None
    module = MlpWithCumsum().eval()
    x = randn(3, 8)
    program = PteProgram(export(module, (x,)), full_delegation=False)
    assert program.num_delegates >= 1
    assert b"EtGpuBackend" in program.pte
    left = [str(n.target) for n in program.left_on_cpu]
    assert any("cumsum" in t for t in left), left
    assert not any("addmm" in t or "linear" in t or "relu" in t for t in left), left
    with torch.no_grad():
        expected = module(x)
    assert_close(program.method.execute([x])[0], expected, what="partially delegated")


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        return torch.nn.functional.silu(self.proj(x)) * x + 0.5


def test_dynamic_seq_len_resizes_outputs():
    module = Block().eval()
    seq = torch.export.Dim("seq", min=1, max=32)
    program = PteProgram(export(module, (randn(4, 8),), dynamic_shapes=({0: seq},)))
    for n in (1, 7, 32, 4):
        x = randn(n, 8)
        actual = program.method.execute([x])[0]
        assert actual.shape == (n, 8)
        with torch.no_grad():
            assert_close(actual, module(x), what=f"seq {n}")


def test_device_compile_spec():
    from etgpu.executorch import EtGpuPartitioner

    with pytest.raises(ValueError):
        EtGpuPartitioner(device="tpu")
    module = Block().eval()
    x = randn(2, 8)
    program = PteProgram(export(module, (x,)), device="cpu")
    assert b"device" in program.pte and b"cpu" in program.pte
    with torch.no_grad():
        assert_close(program.method.execute([x])[0], module(x), what="device=cpu")


def test_bad_device_from_environment_fails_init(monkeypatch):
    from executorch.runtime import Runtime

    program = PteProgram(export(Block().eval(), (randn(2, 8),)), device="cpu")
    monkeypatch.setenv("ETGPU_DEVICE", "bogus")
    loaded = Runtime.get().load_program(program.pte)
    with pytest.raises(Exception):
        loaded.load_method("forward")


def test_wrong_input_shape_is_an_error_not_a_crash():
    module = Block().eval()
    seq = torch.export.Dim("seq", min=1, max=16)
    program = PteProgram(export(module, (randn(4, 8),), dynamic_shapes=({0: seq},)))
    for bad in (randn(4, 3), randn(17, 8), randn(2, 4, 8)):
        with pytest.raises(Exception):
            program.method.execute([bad])
    x = randn(5, 8)  # the method still works after the rejected calls
    with torch.no_grad():
        assert_close(program.method.execute([x])[0], module(x), what="after errors")


class Accumulator(torch.nn.Module):
    """A mutable buffer (like a KV cache): the delegate owns it across calls."""

    def __init__(self):
        super().__init__()
        self.register_buffer("total", torch.zeros(2, 4))

    def forward(self, x):
        self.total.add_(x)
        return self.total * 2.0


def test_mutable_buffer_state_persists_across_calls():
    program = PteProgram(export(Accumulator(), (randn(2, 4),)))
    xs = [randn(2, 4) for _ in range(3)]
    total = torch.zeros(2, 4)
    for x in xs:
        total += x
        assert_close(program.method.execute([x])[0], total * 2.0, what="accumulated")


def _tool(name):
    from etgpu._paths import build_dir

    path = build_dir() / "runtime" / "tools" / name
    return path if path.exists() else None


@pytest.mark.skipif(_tool("etgpu_run") is None, reason="etgpu_run not built")
def test_etgpu_run_executes_a_pte(tmp_path):
    module = MlpWithCumsum().eval()  # partially delegated: needs ExecuTorch's CPU kernels too
    x = randn(3, 8)
    program = PteProgram(export(module, (x,)), full_delegation=False)
    pte, data = tmp_path / "model.pte", tmp_path / "x.bin"
    pte.write_bytes(program.pte)
    data.write_bytes(x.numpy().tobytes())
    result = subprocess.run([str(_tool("etgpu_run")), str(pte), "--iters", "2", "--input", f"0={data}:3,8"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "ETGPU_DEVICE": "cpu"})
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("output 0:"))
    assert "float32 [3, 4]" in line, line
    with torch.no_grad():
        expected = module(x)
    total = float(line.split("sum=")[1].split()[0])
    assert abs(total - expected.sum().item()) <= 1e-4 * max(1.0, expected.abs().sum().item()), (line, expected.sum())


@pytest.mark.skipif(_tool("etgpu_run") is None, reason="etgpu_run not built")
def test_etgpu_run_reports_a_bad_pte(tmp_path):
    pte = tmp_path / "broken.pte"
    pte.write_bytes(b"\x00" * 64)
    result = subprocess.run([str(_tool("etgpu_run")), str(pte)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "failed" in result.stderr, (result.returncode, result.stderr)
