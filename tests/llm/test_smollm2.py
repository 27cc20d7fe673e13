"""SmolLM2-135M-Instruct from its GGUF file: the loader's config and rotary row order, coherent
greedy answers in PyTorch eager, the generation loop against transformers' generate, and (once the
CPU kernels for embedding/norm/softmax/sdpa are merged) etgpu token-for-token against transformers."""

import numpy as np
import pytest
import torch

from smollm2_file import SMOLLM2_GGUF, requires_smollm2

pytestmark = requires_smollm2

PROMPTS = ["What is the capital of France?", "Write one sentence about the ocean.", "List three colors."]


@pytest.fixture(scope="module")
def tokenizer():
    from etgpu.llm.tokenizer import Tokenizer

    return Tokenizer.from_gguf(SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def hf_model():
    from etgpu.llm.gguf_loader import load_gguf_model

    return load_gguf_model(SMOLLM2_GGUF)


def _chat_ids(tokenizer, prompt):
    return tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": prompt}]))


@torch.no_grad()
def _hf_greedy(model, ids, new_tokens):
    """Greedy tokens from transformers eager with its own cache, never stopping early (its
    generate() with min_new_tokens would instead forbid eos, which changes the choice)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    step, out = torch.tensor([ids]), []
    for _ in range(new_tokens):
        logits = model(input_ids=step, cache=cache, use_cache=True).logits[0, -1]
        out.append(int(torch.argmax(logits)))
        step = torch.tensor([[out[-1]]])
    return out


def _llama_cpp_permute(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's row order for q/k (written from its description: each head's
    rows (pair, half) become (half, pair))."""
    return (weight.reshape(num_heads, 2, weight.shape[0] // num_heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def test_unpermute_inverts_llama_cpp_order():
    from etgpu.llm.gguf_loader import unpermute_rotary_rows

    weight = np.random.default_rng(0).standard_normal((3 * 8, 5)).astype(np.float32)
    permuted = _llama_cpp_permute(weight, 3)
    assert not np.array_equal(permuted, weight)
    np.testing.assert_array_equal(unpermute_rotary_rows(permuted, 3), weight)


def test_config_from_metadata():
    import gguf

    from etgpu.llm.gguf_loader import read_config

    kwargs = read_config(gguf.GGUFReader(SMOLLM2_GGUF)).config_kwargs
    assert (kwargs["num_hidden_layers"], kwargs["hidden_size"], kwargs["num_attention_heads"],
            kwargs["num_key_value_heads"], kwargs["intermediate_size"], kwargs["vocab_size"]) == (30, 576, 9, 3, 1536, 49152)
    assert kwargs["rope_parameters"]["rope_theta"] == 100000.0 and kwargs["tie_word_embeddings"]


def test_dequantized_weights_are_sane(hf_model):
    embed = hf_model.model.embed_tokens.weight
    assert embed.dtype == torch.float32 and embed.shape == (49152, 576)
    assert hf_model.lm_head.weight.data_ptr() == embed.data_ptr()  # tied
    q = hf_model.model.layers[0].self_attn.q_proj.weight
    assert torch.isfinite(q).all() and 0.0 < q.abs().mean() < 1.0


def test_eager_greedy_answers_are_coherent(hf_model, tokenizer):
    """A real check: the answer must name Paris, and most words must be ordinary lowercase/
    capitalized alphabetic words (a broken rotary order or vocabulary gives fragments and symbols)."""
    ids = _chat_ids(tokenizer, PROMPTS[0])
    new = _hf_greedy(hf_model, ids, 24)
    text = tokenizer.decode(new[: new.index(2)] if 2 in new else new)  # up to <|im_end|>
    assert "Paris" in text, text
    words = text.split()
    plain = [w for w in words if w.strip(".,;:!?'\"()").isalpha()]
    assert len(words) >= 5 and len(plain) / len(words) >= 0.8, text


def test_generate_loop_matches_transformers(hf_model, tokenizer):
    """etgpu.llm.generate over the export wrapper (static cache, etgpu attention) in eager gives the
    same greedy tokens as transformers eager with its own cache."""
    from etgpu.llm import CausalLMForExport
    from etgpu.llm.generate import SamplingConfig, generate

    ids = _chat_ids(tokenizer, PROMPTS[1])
    expected = _hf_greedy(hf_model, ids, 24)
    wrapper = CausalLMForExport(hf_model, 128)
    streamed = []
    result = generate(wrapper, ids, 24, 128, SamplingConfig(), stop_ids=(), on_token=streamed.append)
    assert result.tokens == expected == streamed
    assert result.stop_reason == "max_new_tokens" and result.stats.generated_tokens == 24
    assert result.stats.prefill_tokens_per_s > 0 and result.stats.decode_tokens_per_s > 0


def test_etgpu_greedy_matches_transformers(hf_model, tokenizer):
    import etgpu
    from etgpu.llm import export_llm
    from etgpu.llm.generate import generate, model_runner

    new_tokens, max_seq = 64, 192
    model = etgpu.Model(etgpu.compile(export_llm(hf_model, max_seq)), device="cpu")
    for prompt in PROMPTS:
        ids = _chat_ids(tokenizer, prompt)
        expected = _hf_greedy(hf_model, ids, new_tokens)
        # No reset between prompts: the prefill rewrites every slot the new positions can see.
        actual = generate(model_runner(model), ids, new_tokens, max_seq, stop_ids=()).tokens
        assert actual == expected, f"{prompt!r}: first difference at {next(i for i, (a, e) in enumerate(zip(actual, expected)) if a != e)}"


def test_capacity_error_before_running():
    from etgpu.llm.generate import CacheCapacityError, generate

    def must_not_run(tokens, positions):
        raise AssertionError("the model ran although the request cannot fit")

    with pytest.raises(CacheCapacityError, match="max_seq_len=16"):
        generate(must_not_run, list(range(10)), 8, 16)
    with pytest.raises(CacheCapacityError):
        generate(must_not_run, list(range(17)), 1, 16)


def test_cli_generate_reports_capacity_before_loading(tmp_path, capsys):
    from etgpu.llm.cli import main

    code = main(["generate", str(tmp_path / "absent.etgpu"), "--tokenizer", SMOLLM2_GGUF,
                 "--prompt", "one two three four five six", "--max-seq-len", "4", "--max-new-tokens", "2"])
    assert code == 2 and "max_seq_len=4" in capsys.readouterr().err
