"""`python -m etgpu.llm.cli`: export a tiny random model, generate from it (once the LLM CPU kernels
are merged), and the errors a user can hit before anything runs."""

import json
import subprocess
import sys

import pytest

from etgpu._paths import build_dir
from smollm2_file import SMOLLM2_GGUF, requires_smollm2


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "etgpu.llm.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_module_runs_and_lists_commands():
    run = _cli()
    assert run.returncode == 2 and "export" in run.stderr and "generate" in run.stderr


def test_unknown_arch_and_missing_source_are_errors(tmp_path):
    run = _cli("export", "--hf", "no-such-model", "--random-weights", "--max-seq-len", "8", "-o", str(tmp_path / "m.etgpu"))
    assert run.returncode != 0 and "unknown --hf" in run.stderr
    run = _cli("export", "--hf", "llama3.2-1b", "--max-seq-len", "8", "-o", str(tmp_path / "m.etgpu"))
    assert run.returncode != 0 and "--random-weights" in run.stderr


def test_pte_without_partitioner_is_a_clear_error(tmp_path):
    try:
        import etgpu.executorch  # noqa: F401
        pytest.skip("the ExecuTorch partitioner is present in this checkout")
    except ImportError:
        pass
    run = _cli("export", "--hf", "llama3.2-1b", "--random-weights", "--scale", "tiny", "--max-seq-len", "8",
               "-o", str(tmp_path / "m.pte"))
    assert run.returncode != 0 and "EtGpuPartitioner" in run.stderr


@requires_smollm2
def test_export_then_generate_tiny(tmp_path):
    model = tmp_path / "tiny.etgpu"
    run = _cli("export", "--hf", "llama3.2-1b", "--random-weights", "--seed", "0", "--scale", "tiny",
               "--dtype", "fp32", "--max-seq-len", "32", "-o", str(model))
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "tiny.etgpu.json").read_text())["max_seq_len"] == 32
    run = _cli("generate", str(model), "--tokenizer", SMOLLM2_GGUF, "--prompt", "he is in the on at",
               "--max-new-tokens", "8", "--device", "cpu", "--temperature", "0.8", "--top-k", "20", "--seed", "3")
    assert run.returncode == 0, run.stderr
    assert "decode" in run.stderr and "tok/s" in run.stderr and run.stdout.strip()
    run = _cli("generate", str(model), "--tokenizer", SMOLLM2_GGUF, "--prompt", "he is in the on at",
               "--max-new-tokens", "40", "--device", "cpu")
    assert run.returncode == 2 and "max_seq_len=32" in run.stderr
