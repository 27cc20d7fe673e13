"""Every recipe at tiny scale: one partition, and logits equal transformers eager over a 16-token
prefill and 32 decode steps (Gemma 3's window is 8, so decode runs far past it)."""

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


@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_wrapper_matches_transformers_in_eager(arch):
    """The export wrapper (static cache + etgpu attention) is itself exact in PyTorch."""
    reference = build_hf_model(arch, "tiny", seed=0)
    tokens = _tokens(reference.config.vocab_size)
    expected = reference_logits(reference, tokens, PREFILL)
    wrapper = CausalLMForExport(build_hf_model(arch, "tiny", seed=0), MAX_SEQ)
    with torch.no_grad():
        actual = stepwise_logits(wrapper, tokens, PREFILL)
    for step, (a, e) in enumerate(zip(actual, expected)):
        assert rel_err(a, e) <= 1e-5, f"{arch} step {step}"


@pytest.mark.parametrize("arch", sorted(RECIPES))
def test_etgpu_matches_transformers(arch):
    reference = build_hf_model(arch, "tiny", seed=0)
    tokens = _tokens(reference.config.vocab_size)
    expected = reference_logits(reference, tokens, PREFILL)
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
