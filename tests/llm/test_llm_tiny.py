"""Every recipe at tiny scale: one partition, and logits equal transformers eager over a 16-token
prefill and 32 decode steps (Gemma 3's window is 8, so decode runs far past it)."""

import re

import pytest
import torch

import etgpu
from etgpu.llm import CausalLMForExport, RECIPES, build_hf_model, export_llm
from etgpu.llm.reference import reference_logits, stepwise_logits
from parity import TEST_DEVICE, rel_err

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



def test_attention_runs_no_head_transposes(tmp_path, monkeypatch):
    """The value write reads v as its projection made it (IndexCopy x_seq_major) and SDPA stores
    its rows where the output projection reads them (Sdpa out_seq_major): no layer runs a
    Permute, two instructions fewer per layer than without the seq_major pass."""
    import etgpu.lower.passes as passes
    from etgpu import describe

    model = build_hf_model("llama3.2-1b", "tiny", seed=0)
    layers = model.config.num_hidden_layers
    exported = export_llm(model, MAX_SEQ)

    def instructions():
        """The compiled program's instruction count and its count of each op (inspect's table)."""
        path = tmp_path / "llama.etgpu"
        etgpu.compile(exported, path)
        [payload] = describe.read_payloads(path)
        text = describe.describe(payload)
        ops = {name: int(count) for name, count in re.findall(r"^  (\w+) +(\d+)$", text, re.M)}
        return int(re.search(r"instructions: (\d+)", text).group(1)), ops

    fused, fused_ops = instructions()
    monkeypatch.setattr(passes, "fuse_seq_major_attention", lambda gm: 0)
    unfused, unfused_ops = instructions()
    assert "Permute" not in fused_ops and unfused_ops["Permute"] == 2 * layers, (fused_ops, unfused_ops)
    assert unfused - fused == 2 * layers, (unfused, fused)
