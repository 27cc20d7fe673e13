"""The sampler and the generation loop on a scripted model (no weights needed)."""

import pytest
import torch

from etgpu.llm.generate import CacheCapacityError, Sampler, SamplingConfig, generate

LOGITS = torch.tensor([0.0, 3.0, 2.5, -1.0, 1.0])  # best: 1, then 2, then 4


def _draws(config, n=400):
    sample = Sampler(config)
    return [sample(LOGITS) for _ in range(n)]


def test_greedy_and_degenerate_cuts_pick_the_argmax():
    assert set(_draws(SamplingConfig())) == {1}
    assert set(_draws(SamplingConfig(temperature=5.0, top_k=1, seed=0))) == {1}
    assert set(_draws(SamplingConfig(temperature=5.0, top_p=0.01, seed=0))) == {1}


def test_top_k_and_top_p_limit_the_candidates():
    assert set(_draws(SamplingConfig(temperature=1.0, top_k=2, seed=0))) == {1, 2}
    # Softmax of LOGITS: p1 ~ 0.54, p2 ~ 0.33, so 0.8 of the mass needs exactly tokens 1 and 2.
    assert set(_draws(SamplingConfig(temperature=1.0, top_p=0.8, seed=0))) == {1, 2}
    assert set(_draws(SamplingConfig(temperature=1.0, seed=0), 2000)) == {0, 1, 2, 3, 4}


def test_seed_repeats_and_frequencies_follow_softmax():
    assert _draws(SamplingConfig(temperature=1.0, seed=7)) == _draws(SamplingConfig(temperature=1.0, seed=7))
    draws = _draws(SamplingConfig(temperature=1.0, seed=1), 4000)
    expected = torch.softmax(LOGITS, 0)[1].item()
    assert abs(draws.count(1) / len(draws) - expected) < 0.03


def test_invalid_configs():
    for bad in (dict(temperature=-1.0), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)


def test_loop_positions_stop_tokens_and_streaming():
    """A scripted model that records its calls and always predicts (last input token + 1)."""
    calls = []

    def run(tokens, positions):
        calls.append((tokens.tolist(), positions.tolist()))
        logits = torch.zeros(1, 1, 50)
        logits[0, 0, tokens[0, -1] + 1] = 1.0
        return logits

    streamed = []
    result = generate(run, [3, 4, 5], 10, 32, stop_ids=[9], on_token=streamed.append)
    assert result.tokens == [6, 7, 8, 9] == streamed and result.stop_reason == "stop_token"
    assert calls == [([[3, 4, 5]], [0, 1, 2]), ([[6]], [3]), ([[7]], [4]), ([[8]], [5])]
    assert result.stats.prompt_tokens == 3 and result.stats.generated_tokens == 4
    calls.clear()
    # The full length fits exactly: prompt 3 + 30 new needs 32 positions (the last is never fed back).
    assert len(generate(run, [0, 1, 2], 30, 32, stop_ids=[]).tokens) == 30
    with pytest.raises(CacheCapacityError):
        generate(run, [0, 1, 2], 31, 32)
