"""Every recipe at tiny scale: one partition, and logits equal transformers eager over a 16-token
prefill and 32 decode steps (Gemma 3's window is 8, so decode runs far past it)."""

import re
from collections import Counter

import pytest
import torch

import etgpu
from etgpu.llm import CausalLMForExport, RECIPES, build_hf_model, export_llm
from etgpu.llm.reference import reference_logits, stepwise_logits
from parity import TEST_DEVICE, assert_close, rel_err

PREFILL, DECODE, MAX_SEQ = 16, 32, 64


def _tokens(vocab: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, vocab, (1, PREFILL + DECODE), generator=generator)


def _transformers_steps(arch: str):
    """The test tokens and transformers eager's logits per step (prefill, then each decode step)."""
    reference = build_hf_model(arch, "tiny", seed=0)
    tokens = _tokens(reference.config.vocab_size)
    return tokens, reference_logits(reference, tokens, PREFILL)


@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_wrapper_matches_transformers_in_eager(arch):
    """The export wrapper (static cache + etgpu attention) is itself exact in PyTorch."""
    tokens, expected = _transformers_steps(arch)
    wrapper = CausalLMForExport(build_hf_model(arch, "tiny", seed=0), MAX_SEQ)
    with torch.no_grad():
        actual = stepwise_logits(wrapper, tokens, PREFILL)
    for step, (a, e) in enumerate(zip(actual, expected)):
        assert rel_err(a, e) <= 1e-5, f"{arch} step {step}"


@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_etgpu_matches_transformers(arch):
    tokens, expected = _transformers_steps(arch)
    exported = export_llm(build_hf_model(arch, "tiny", seed=0), MAX_SEQ)
    model = etgpu.Model(etgpu.compile(exported), device=TEST_DEVICE)
    actual = stepwise_logits(lambda t, p: model.run([t, p])[0], tokens, PREFILL)
    errors = [rel_err(a, e) for a, e in zip(actual, expected)]
    assert max(errors) <= 1e-4, f"{arch}: worst step {errors.index(max(errors))} rel-err {max(errors):.3g}"


def test_position_past_cache_is_an_error():
    exported = export_llm(build_hf_model("llama3.2-1b", "tiny", seed=0), 8)
    model = etgpu.Model(etgpu.compile(exported), device=TEST_DEVICE)
    # The CPU engine checks positions before writing; the CUDA engine reads them on the device
    # (so a captured step stays valid), skips the write and reports it at the step's end.
    with pytest.raises(etgpu.runtime.EtGpuError, match="outside|out of range"):
        model.run([torch.tensor([[1]]), torch.tensor([8])])
    with pytest.raises(etgpu.runtime.EtGpuError, match="bounds"):
        model.run([torch.zeros(1, 9, dtype=torch.long), torch.arange(9)])
    # The program is still usable after both errors.
    assert model.run([torch.tensor([[1]]), torch.tensor([0])])[0].shape == (1, 1, 512)


@pytest.mark.parametrize("arch", ["qwen3-0.6b", "gemma3-1b"])
def test_bf16_is_as_close_to_fp32_as_transformers(arch):
    """Two correct bf16 implementations differ by rounding noise that grows with depth (see
    docs/llm.md: transformers' own SDPA and eager attention differ as much), so etgpu bf16 is held
    to fp32 instead: on the same bf16 weights, no further from transformers fp32 than transformers
    bf16 is (plus a quarter, for noise)."""
    fp32 = build_hf_model(arch, "tiny", dtype=torch.bfloat16, seed=0).float()
    tokens = _tokens(fp32.config.vocab_size)
    exact = reference_logits(fp32, tokens, PREFILL)
    hf_bf16 = reference_logits(build_hf_model(arch, "tiny", dtype=torch.bfloat16, seed=0), tokens, PREFILL)
    exported = export_llm(build_hf_model(arch, "tiny", dtype=torch.bfloat16, seed=0), MAX_SEQ)
    model = etgpu.Model(etgpu.compile(exported), device=TEST_DEVICE)
    ours = stepwise_logits(lambda t, p: model.run([t, p])[0], tokens, PREFILL)
    ours_err = max(rel_err(a, e) for a, e in zip(ours, exact))
    hf_err = max(rel_err(a, e) for a, e in zip(hf_bf16, exact))
    assert 0 < ours_err <= 1.25 * hf_err, f"{arch}: etgpu bf16 vs fp32 {ours_err:.4f}, transformers bf16 {hf_err:.4f}"


def test_key_cache_write_is_fused_into_rope(tmp_path):
    """Each layer's roped k goes straight into its cache (one Rope with a cache), so only the V
    writes are IndexCopy instructions; q's and k's Rope remain one each per layer."""
    from etgpu import describe

    path = tmp_path / "llama.etgpu"
    model = build_hf_model("llama3.2-1b", "tiny", seed=0)
    layers = model.config.num_hidden_layers
    etgpu.compile(export_llm(model, MAX_SEQ), path)
    [payload] = describe.read_payloads(path)
    text = describe.describe(payload)
    assert re.search(rf"\bIndexCopy +{layers}\b", text) and re.search(rf"\bRope +{2 * layers}\b", text), text


# The instructions the pattern passes produce, and the ones they remove (transposes, cache writes).
_FUSED_KINDS = ("RmsNorm", "AddRmsNorm", "Rope", "Glu", "SplitLinear", "Permute", "IndexCopy", "Sdpa")


def _fused_counts(payload) -> dict:
    from etgpu import describe

    text = describe.describe(payload)
    rows = text[text.index("instructions:"):text.index("tensors:")].splitlines()[1:]
    counts = {kind: int(n) for kind, n in (row.split() for row in rows)}
    return {kind: counts.get(kind, 0) for kind in _FUSED_KINDS}


@pytest.mark.parametrize("arch", ["llama3.2-1b", "qwen3-0.6b", "gemma3-1b"])
def test_pte_flow_fuses_like_the_etgpu_flow(arch, tmp_path):
    """The ExecuTorch flow hands the delegate an edge-dialect graph (view ops spelled as copies, an
    RMSNorm's eps lifted into a 0-d buffer): the pattern passes must find the same fusions there
    as in the .etgpu flow. (Gemma's embedding scale still lowers to one Binary and one Cast more
    in the edge graph, outside every pattern.)"""
    from etgpu import describe
    from parity import PteProgram, pte_path_enabled

    if not pte_path_enabled():
        pytest.skip("executorch not importable or ETGPU_TEST_PTE=0")
    model = build_hf_model(arch, "tiny", seed=0)
    etgpu.compile(export_llm(model, MAX_SEQ), tmp_path / "m.etgpu")
    program = PteProgram(export_llm(model, MAX_SEQ), full_delegation=False)
    (tmp_path / "m.pte").write_bytes(program.pte)
    # The fused .pte still computes the model: a prefill's logits against the exported module's.
    tokens = _tokens(model.config.vocab_size)[:, :PREFILL]
    positions = torch.arange(PREFILL)
    expected = export_llm(model, MAX_SEQ).module()(tokens, positions)
    assert_close(program.method.execute([tokens, positions])[0], expected, what=arch)
    [etgpu_payload] = describe.read_payloads(tmp_path / "m.etgpu")
    [pte_payload] = describe.read_payloads(tmp_path / "m.pte")
    assert _fused_counts(pte_payload) == _fused_counts(etgpu_payload)
    assert _fused_counts(pte_payload)["RmsNorm"] + _fused_counts(pte_payload)["AddRmsNorm"] > 0


def _instruction_counts(exported) -> Counter:
    from etgpu.compile import lower
    from etgpu.ir.Op import Op
    from etgpu.ir.Program import Program

    names = {v: k for k, v in vars(Op).items() if not k.startswith("_")}
    graph = Program.GetRootAs(lower(exported).payload, 0).Graph()
    return Counter(names[graph.Instructions(i).OpType()] for i in range(graph.InstructionsLength()))


@pytest.mark.parametrize("arch, fewer_per_layer", [("qwen3-0.6b", 2), ("gemma3-1b", 4)])
def test_qk_norms_run_inside_rope(arch, fewer_per_layer, monkeypatch):
    """Each layer's q and k norms are folded into its two Ropes: two instructions (kernel launches)
    fewer per layer than with the fold off, four for Gemma 3, whose q and k head transposes come
    before the norms (a Permute each) and are absorbed with them. Qwen3 keeps only the first
    layer's input norm and the final norm as RmsNorm instructions (the others take in their
    residual add)."""
    import etgpu.lower.passes as passes

    model = build_hf_model(arch, "tiny", seed=0)
    layers = model.config.num_hidden_layers
    exported = export_llm(model, MAX_SEQ)
    fused = _instruction_counts(exported)
    monkeypatch.setattr(passes, "fuse_rope_norms", lambda gm: 0)
    unfused = _instruction_counts(exported)
    assert sum(unfused.values()) - sum(fused.values()) == fewer_per_layer * layers, (fused, unfused)
    assert fused["Rope"] == 2 * layers and unfused["RmsNorm"] - fused["RmsNorm"] == 2 * layers, (fused, unfused)
    if arch.startswith("qwen3"):
        assert fused["RmsNorm"] == 2, fused


def test_attention_runs_no_head_transposes(monkeypatch):
    """The value write reads v as its projection made it (IndexCopy x_seq_major) and SDPA stores
    its rows where the output projection reads them (Sdpa out_seq_major): no layer runs a
    Permute, two instructions fewer per layer than without the seq_major pass."""
    import etgpu.lower.passes as passes

    model = build_hf_model("llama3.2-1b", "tiny", seed=0)
    layers = model.config.num_hidden_layers
    exported = export_llm(model, MAX_SEQ)
    fused = _instruction_counts(exported)
    monkeypatch.setattr(passes, "fuse_seq_major_attention", lambda gm: 0)
    unfused = _instruction_counts(exported)
    # (Older transformers also transpose the rotary frequencies once per model: one Permute more.)
    assert unfused["Permute"] - fused["Permute"] == 2 * layers, (fused, unfused)
    assert sum(unfused.values()) - sum(fused.values()) == 2 * layers, (fused, unfused)


@pytest.mark.skipif(TEST_DEVICE != "cuda", reason="a CUDA engine launch grouping")
def test_layer_rotations_and_cache_writes_share_one_launch():
    """On cuda each layer's Rope(q), Rope(k) into its cache and IndexCopy(v) into its cache run as
    one launch: a prefill folds two instructions per layer, and its logits still match
    transformers'."""
    arch = "llama3.2-1b"
    tokens, expected = _transformers_steps(arch)
    model = build_hf_model(arch, "tiny", seed=0)
    program = etgpu.Model(etgpu.compile(export_llm(model, MAX_SEQ)), device="cuda")
    logits = program.run([tokens[:, :PREFILL], torch.arange(PREFILL)])[0]
    assert program.stats()["instructions_folded"] == 2 * model.config.num_hidden_layers
    assert rel_err(logits.reshape(1, -1).float(), expected[0]) <= 1e-4
