"""`etgpu export NAME` for the built-in examples: one delegated partition in the .pte, and the
same numbers as eager through executorch.runtime, through the C++ etgpu_run, and as .etgpu."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import etgpu
from etgpu.cli import main
from etgpu.models.examples import build_example
from parity import PteProgram, assert_close, pte_path_enabled

ETGPU_RUN = Path(os.environ.get("ETGPU_BUILD_DIR", "build")) / "runtime" / "tools" / "etgpu_run"


def _inputs_at(name, tokens):
    _, inputs, _ = build_example(name)
    x = inputs[0]
    shape = list(x.shape)
    if name == "decoder-layer":
        shape[1] = tokens
    elif name == "mlp":
        shape[0] = tokens
    return [torch.randn(shape, generator=torch.Generator().manual_seed(tokens))]


@pytest.mark.parametrize("name", ["mlp", "decoder-layer", "vit-block"])
def test_export_to_etgpu_matches_eager(name, tmp_path):
    path = tmp_path / f"{name}.etgpu"
    assert main(["export", name, "-o", str(path)]) == 0
    module, _, dynamic = build_example(name)
    model = etgpu.load(path, device="cpu")
    for tokens in ([1, 17, 256] if dynamic else [197]):
        x = _inputs_at(name, tokens)
        with torch.no_grad():
            assert_close(model.run(x)[0], module(*x), what=f"{name} at {tokens} tokens")


@pytest.mark.skipif(not pte_path_enabled(), reason="executorch not importable or ETGPU_TEST_PTE=0")
def test_decoder_layer_pte_is_one_partition_and_runs_everywhere(tmp_path, capsys):
    path = tmp_path / "decoder-layer.pte"
    assert main(["export", "decoder-layer", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    assert "delegated partitions: 1" in capsys.readouterr().out
    module, _, _ = build_example("decoder-layer")
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(path.read_bytes())
    method = program.load_method("forward")
    for tokens in (1, 100, 256):
        x = _inputs_at("decoder-layer", tokens)
        with torch.no_grad():
            assert_close(method.execute(x)[0], module(*x), what=f"executorch.runtime at {tokens} tokens")
    if ETGPU_RUN.exists():
        result = subprocess.run([str(ETGPU_RUN), str(path)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "output 0" in result.stdout


def test_export_module_spec(tmp_path):
    source = tmp_path / "user_model.py"
    source.write_text("import torch\n"
                      "def build():\n"
                      "    return torch.nn.Linear(4, 3), (torch.randn(2, 4),)\n")
    out = tmp_path / "user.etgpu"
    assert main(["export", "--module", f"{source}:build", "-o", str(out)]) == 0
    assert etgpu.load(out, device="cpu").run([torch.randn(2, 4)])[0].shape == (2, 3)


def test_export_rejects_unknown_names(tmp_path, capsys):
    assert main(["export", "resnet-9000", "-o", str(tmp_path / "x.etgpu")]) == 1
    assert "unknown example" in capsys.readouterr().err


def test_supported_ops_lists_the_registry():
    ops = etgpu.lower.supported_ops()
    assert "aten.linear.default" in ops and "aten.scaled_dot_product_attention.default" in ops
    assert len(ops) >= 90
