"""`etgpu inspect` / `etgpu run` / `python -m etgpu` on a small compiled model with a dynamic dim
and a constant weight."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import etgpu
from etgpu import cli


class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(6, 4))

    def forward(self, x):
        return torch.relu(x @ self.weight) * 2.0 + 1.0


@pytest.fixture
def small_model(tmp_path):
    module = Small().eval()
    seq = torch.export.Dim("seq", min=1, max=16)
    exported = torch.export.export(module, (torch.randn(3, 6),), dynamic_shapes=({0: seq},))
    path = tmp_path / "small.etgpu"
    etgpu.compile(exported, path)
    return module, path


def test_inspect_reports_symbols_io_ops_and_sizes(small_model, capsys):
    _, path = small_model
    assert cli.main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"symbols: \w+ in \[1, 16\]", text), text
    assert re.search(r"inputs:\n  t\d+ .*F32\[\w+, 6\]", text), text
    assert re.search(r"outputs:\n  t\d+ .*F32\[\w+, 4\]", text), text
    assert re.search(r"MatMul\s+1", text), text
    assert re.search(r"constant bytes: 96 \(1 keyed constants in the file, 96 bytes\)", text), text
    arena = int(re.search(r"arena bytes: (\d+)", text).group(1))
    assert arena >= 16 * 6 * 4 + 16 * 4 * 4  # input and output at the upper bound at least


def test_run_with_npy_input_prints_exact_stats(small_model, tmp_path, capsys):
    module, path = small_model
    x = torch.randn(5, 6)
    np.save(tmp_path / "x.npy", x.numpy())
    assert cli.main(["run", str(path), "--device", "cpu", "--input", f"0={tmp_path / 'x.npy'}"]) == 0
    text = capsys.readouterr().out
    expected = module(x).detach()
    assert f"output 0: float32[5x4] min={expected.min().item():.6g}" in text, text
    assert "engine: cpu (requested)" in text


def test_run_seeded_inputs_use_the_upper_bound(small_model, capsys):
    _, path = small_model
    assert cli.main(["run", str(path), "--device", "cpu", "--iters", "2"]) == 0
    text = capsys.readouterr().out
    assert "input 0: float32[16x6]" in text and "(seeded)" in text
    assert "output 0: float32[16x4]" in text
    assert "best of 2:" in text


def test_run_rejects_a_bad_input_with_the_runtime_message(small_model, tmp_path, capsys):
    _, path = small_model
    np.save(tmp_path / "bad.npy", np.zeros((5, 7), dtype=np.float32))
    assert cli.main(["run", str(path), "--device", "cpu", "--input", f"0={tmp_path / 'bad.npy'}"]) == 1
    assert "input 0 ('x'): dim 1 is 7, expected 6" in capsys.readouterr().err


def test_inspect_rejects_a_file_that_is_not_a_model(tmp_path, capsys):
    junk = tmp_path / "junk.etgpu"
    junk.write_bytes(b"definitely not a model")
    assert cli.main(["inspect", str(junk)]) == 1
    assert "neither an .etgpu file" in capsys.readouterr().err


def test_inspect_pte_without_etgpu_delegates(tmp_path, capsys):
    pytest.importorskip("executorch.exir")
    from executorch.exir import to_edge

    exported = torch.export.export(Small().eval(), (torch.randn(3, 6),))
    pte = tmp_path / "plain.pte"
    pte.write_bytes(to_edge(exported).to_executorch().buffer)
    assert cli.main(["inspect", str(pte)]) == 1
    assert "no EtGpuBackend delegate" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "etgpu", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert all(word in result.stdout for word in ("run", "inspect", "demo"))


def test_inspect_pte_with_an_etgpu_delegate(tmp_path, capsys):
    pytest.importorskip("executorch.exir")
    partitioner = pytest.importorskip("etgpu.executorch", reason="needs the ExecuTorch partitioner").EtGpuPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(Small().eval(), (torch.randn(3, 6),))
    pte = tmp_path / "delegated.pte"
    pte.write_bytes(to_edge_transform_and_lower(exported, partitioner=[partitioner()]).to_executorch().buffer)
    assert cli.main(["inspect", str(pte)]) == 0
    text = capsys.readouterr().out
    assert "delegated.pte method 'forward' delegate 0: etgpu IR v1" in text, text
    assert re.search(r"inputs:\n  t\d+ .*F32\[3, 6\]", text), text
    assert re.search(r"MatMul\s+1", text), text


def _int4_bytes_shown(tmp_path, capsys, monkeypatch, rows, cols, encoding_switch, other_switch):
    """`etgpu inspect`'s int4 g32 line, {"1": with, "0": without} the encoding `encoding_switch`,
    the other encoding (`other_switch`) off, for one int4-g32 linear of normal weights (std 0.02,
    as a real model's: the codes cluster around the zero point)."""
    pytest.importorskip("torchao")
    from torchao.quantization import quantize_

    from etgpu.llm.quantize import linear_config

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(cols, rows))
    torch.nn.init.normal_(module[0].weight, std=0.02)
    module = module.to(torch.bfloat16)
    quantize_(module, linear_config("int4-g32"))
    exported = torch.export.export(module, (torch.randn(2, cols, dtype=torch.bfloat16),))
    monkeypatch.setenv(other_switch, "0")
    shown = {}
    for on in ("1", "0"):
        monkeypatch.setenv(encoding_switch, on)
        path = tmp_path / f"{encoding_switch}_{on}.etgpu"
        etgpu.compile(exported, path)
        assert cli.main(["inspect", str(path)]) == 0
        shown[on] = re.search(r"\n  int4 g32 +(.*)\n", capsys.readouterr().out).group(1)
    return shown


def _stored_and_decoded(line):
    return tuple(map(int, re.fullmatch(r"(\d+) \(decoded (\d+)\)", line).groups()))


def test_inspect_shows_what_packed_scales_save(tmp_path, capsys, monkeypatch):
    """The int4 weight's bytes as stored, and decoded where the packed scales made them smaller."""
    shown = _int4_bytes_shown(tmp_path, capsys, monkeypatch, 64, 128, "ETGPU_PACK_QPARAMS", "ETGPU_HUFFMAN_CODES")
    raw = 64 * 128 // 2 + 64 * 4 * 2  # int4 codes + bf16 scales
    assert shown["0"] == str(raw)
    stored, decoded = _stored_and_decoded(shown["1"])
    assert decoded == raw and stored < raw


def test_inspect_shows_what_huffman_codes_save(tmp_path, capsys, monkeypatch):
    """The int4 weight's bytes as stored, and decoded, where its codes are entropy-coded."""
    shown = _int4_bytes_shown(tmp_path, capsys, monkeypatch, 256, 512, "ETGPU_HUFFMAN_CODES", "ETGPU_PACK_QPARAMS")
    codes, scales = 256 * 512 // 2, 256 * 16 * 2
    assert shown["0"] == str(codes + scales)
    stored, decoded = _stored_and_decoded(shown["1"])
    assert decoded == codes + scales and scales + 0.8 * codes < stored < scales + 0.98 * codes
