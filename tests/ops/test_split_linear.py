"""Sibling linears merged into one SplitLinear (etgpu.lower.passes.split_linear): q/k/v and
gate/up read one input, so their weights become one concatenated constant and one instruction
writes each sibling's output (and a gated MLP's act(gate) * up). Parity against eager for decode
(T = 1, the GEMV on CUDA) and prefill lengths (T = 8 is the GEMV's largest row count, 13 takes
cuBLASLt per sibling), with and without biases; the pass fires on the tiny LLM recipes and the
program never grows."""

import pytest
import torch

import etgpu
from etgpu import container, describe
from etgpu.ir.Op import Op
from etgpu.llm import build_hf_model, export_llm
from parity import Fn, PteProgram, check_module, export, pte_path_enabled, randn
from test_norm import instruction_ops

F = torch.nn.functional


@pytest.fixture(autouse=True)
def _merging_on(monkeypatch):
    """Tests assume the default (merging on) whatever the caller's environment says."""
    monkeypatch.delenv("ETGPU_SPLIT_LINEAR", raising=False)
    monkeypatch.delenv("ETGPU_SPLIT_LINEAR_GLU", raising=False)


BIASES = ["none", "all", "mixed"]  # mixed: the first sibling has none, the others have one


class Siblings(torch.nn.Module):
    """Linears of `widths` output features over one input, each output read by something else,
    as an attention block's projections are (views, RoPE, ...)."""

    def __init__(self, hidden, widths, bias="none", dtype=torch.float32):
        super().__init__()
        has_bias = [bias == "all" or (bias == "mixed" and i > 0) for i in range(len(widths))]
        self.projs = torch.nn.ModuleList(
            torch.nn.Linear(hidden, width, bias=b).to(dtype) for width, b in zip(widths, has_bias))

    def forward(self, x):
        return tuple(proj(x) * (i + 1) for i, proj in enumerate(self.projs))


class GatedMlp(torch.nn.Module):
    """down(act(gate(x)) * up(x)); with up_first, up is computed first (the instruction's first
    output must still be the gate); with gate_out, the gate is also an output of its own."""

    def __init__(self, hidden, inter, dtype=torch.float32, act="silu", up_first=False, gate_out=False):
        super().__init__()
        self.gate = torch.nn.Linear(hidden, inter, bias=False).to(dtype)
        self.up = torch.nn.Linear(hidden, inter, bias=False).to(dtype)
        self.down = torch.nn.Linear(inter, hidden, bias=False).to(dtype)
        self.act = {"silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda v: F.gelu(v, approximate="tanh")}[act]
        self.up_first, self.gate_out = up_first, gate_out

    def forward(self, x):
        up = self.up(x) if self.up_first else None
        gate = self.gate(x)
        out = self.down(self.act(gate) * (self.up(x) if up is None else up))
        return (out, gate) if self.gate_out else out


def _check_lengths(module, hidden, dtype, lengths=(1, 8, 13)):
    """One export with a dynamic token dim (example length 5), run at each of `lengths`."""
    tokens = torch.export.Dim("tokens", max=64)
    check_module(module, (randn(1, 5, hidden, dtype=dtype),), dynamic_shapes=({1: tokens},),
                 run_inputs_list=[(randn(1, t, hidden, dtype=dtype),) for t in lengths])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", BIASES)
def test_gqa_qkv_projections(dtype, bias):
    """Llama 3.2 1B's attention projections: 2048 -> 2048 / 512 / 512."""
    module = Siblings(2048, (2048, 512, 512), bias, dtype)
    assert instruction_ops(module, (randn(1, 3, 2048, dtype=dtype),)).count("SplitLinear") == 1
    _check_lengths(module, 2048, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fold_glu", [True, False])
def test_gate_up_projections(monkeypatch, dtype, fold_glu):
    """The Glu folds into the SplitLinear (ETGPU_SPLIT_LINEAR_GLU=0: a Glu instruction of its own)."""
    monkeypatch.setenv("ETGPU_SPLIT_LINEAR_GLU", "1" if fold_glu else "0")
    module = GatedMlp(256, 700, dtype)  # 350 column pairs: the GEMV grid's last block is partly idle
    expected = ["SplitLinear", "MatMul"] if fold_glu else ["SplitLinear", "Glu", "MatMul"]
    assert instruction_ops(module, (randn(1, 3, 256, dtype=dtype),)) == expected
    _check_lengths(module, 256, dtype, lengths=(1, 2, 3, 4, 8, 13))


@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_glu_activations_and_operand_order(act, dtype):
    module = GatedMlp(64, 100, dtype, act=act, up_first=True)
    assert instruction_ops(module, (randn(1, 3, 64, dtype=dtype),)) == ["SplitLinear", "MatMul"]
    _check_lengths(module, 64, dtype)


def test_glu_not_folded_when_the_gate_is_read_elsewhere():
    module = GatedMlp(64, 100, gate_out=True)
    assert instruction_ops(module, (randn(1, 3, 64),)) == ["SplitLinear", "Glu", "MatMul"]
    _check_lengths(module, 64, torch.float32)


@pytest.mark.parametrize("bias", BIASES)
def test_rank_2_input_and_odd_widths(bias):
    """x [T, K] (no batch dim); widths that are not multiples of the GEMV's column pairs."""
    module = Siblings(40, (7, 1, 33), bias)
    tokens = torch.export.Dim("tokens", max=64)
    check_module(module, (randn(5, 40),), dynamic_shapes=({0: tokens},),
                 run_inputs_list=[(randn(1, 40),), (randn(8, 40),), (randn(13, 40),)])


def test_more_siblings_than_one_instruction_takes():
    """Ten linears of one input: a SplitLinear of eight and one of two."""
    module = Siblings(32, tuple(range(4, 14)))
    assert instruction_ops(module, (randn(2, 32),)).count("SplitLinear") == 2
    check_module(module, (randn(2, 32),))


def test_not_merged_when_a_weight_is_read_elsewhere():
    """A weight the program also reads elsewhere would then be stored twice: its linear stays a
    MatMul; the other two still merge."""
    def fn(x, wq, wk, wv):
        return F.linear(x, wq), F.linear(x, wk), F.linear(x, wv), wk.sum()

    inputs = (randn(1, 3, 16),)
    module = Fn(fn, randn(16, 16), randn(8, 16), randn(8, 16))
    assert sorted(instruction_ops(module, inputs)) == ["MatMul", "Reduce", "SplitLinear"]
    check_module(module, inputs)


def test_not_merged_across_inputs_or_for_activations():
    """Different inputs, or a weight computed at run time: nothing to merge."""
    def fn(x, y, w):
        return F.linear(x, w), F.linear(y, w * 2), F.linear(x, w * 3)

    inputs = (randn(2, 8), randn(2, 8), randn(4, 8))
    assert "SplitLinear" not in instruction_ops(Fn(fn), inputs)
    check_module(Fn(fn), inputs)


def _summary(monkeypatch, model, merge: bool):
    """(file bytes, instruction names, dense weight bytes) of `model` compiled with or without
    the pass."""
    monkeypatch.setenv("ETGPU_SPLIT_LINEAR", "1" if merge else "0")
    data = etgpu.compile(export_llm(model, 64))
    graph = describe.parse(container.unpack(data)[0]).graph
    names = {v: k for k, v in vars(Op).items() if not k.startswith("_")}
    return len(data), [names[ins.opType] for ins in graph.instructions], describe.weight_bytes_by_scheme(graph)


# Per layer: SplitLinear instructions, the MatMuls (q/k/v and gate/up: 3 + 2) and Glus they
# replace. Phi-3's checkpoint layout already fuses them (qkv_proj, gate_up_proj): nothing to merge.
@pytest.mark.parametrize("arch, splits, matmuls, glus", [("llama3.2-1b", 2, 5, 1), ("qwen3-0.6b", 2, 5, 1),
                                                         ("gemma3-1b", 2, 5, 1), ("phi-4-mini", 0, 0, 0)])
def test_fires_on_tiny_llms_without_growing_the_program(monkeypatch, arch, splits, matmuls, glus):
    model = build_hf_model(arch, "tiny", seed=0)
    layers = model.config.num_hidden_layers
    size, ops, weights = _summary(monkeypatch, model, True)
    size_before, ops_before, weights_before = _summary(monkeypatch, model, False)
    assert ops.count("SplitLinear") == splits * layers
    assert ops.count("MatMul") == ops_before.count("MatMul") - matmuls * layers
    assert ops.count("Glu") == ops_before.count("Glu") - glus * layers
    assert weights == weights_before and size <= size_before


@pytest.mark.skipif(not pte_path_enabled(), reason="executorch is not installed")
def test_pte_holds_each_weight_once(monkeypatch):
    """Through the ExecuTorch partitioner the originals do not stay in the .pte either."""
    module = Siblings(256, (256, 64, 64))
    exported = export(module, (randn(1, 3, 256),))
    sizes = {}
    for merge in ("1", "0"):
        monkeypatch.setenv("ETGPU_SPLIT_LINEAR", merge)
        sizes[merge] = len(PteProgram(exported).pte)
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    assert sizes["1"] <= sizes["0"] < 1.2 * weight_bytes, sizes
