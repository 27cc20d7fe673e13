"""Gemma 3's sliding-window layers keep a ring of W slots (plus a discard slot), not max_seq_len.
The tiny recipe's window is 8; these schedules cross it in every way a caller can: a prefill longer
than W, chunks that start past W and are themselves longer than W, single steps, and a new
sequence from position 0 over a ring full of the previous one's keys."""

import pytest
import torch

import etgpu
from etgpu.llm import CausalLMForExport, build_hf_model, export_llm
from etgpu.llm.recipes import build_config
from parity import TEST_DEVICE, rel_err

MAX_SEQ = 64
CHUNKS = [11, 1, 1, 13, 3, 1, 9, 1, 2]  # sums to 42; starts 0, 11, 12, 13, 26, 29, 30, 39, 40


def _tokens(vocab, n, seed):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _eager_last_logits(hf_model, tokens, ends):
    """transformers eager over the whole sequence at once (no cache): logits at each chunk's end."""
    logits = hf_model(input_ids=tokens).logits[0]
    return [logits[end - 1].float() for end in ends]


def _run_chunks(run, tokens, chunks):
    out, start = [], 0
    for size in chunks:
        out.append(run(tokens[:, start:start + size], torch.arange(start, start + size)).reshape(-1).float())
        start += size
    return out


def _ends(chunks):
    return [sum(chunks[:i + 1]) for i in range(len(chunks))]


@pytest.mark.parametrize("arch", ["gemma3-1b", "gemma3-4b"])
def test_ring_cache_is_window_sized(arch):
    config = build_config(arch, "tiny")
    cache = CausalLMForExport(build_hf_model(arch, "tiny"), MAX_SEQ).cache
    for i, layer_type in enumerate(config.layer_types):
        slots = getattr(cache, f"k_{i}").shape[2]
        assert slots == (config.sliding_window + 1 if layer_type == "sliding_attention" else MAX_SEQ)
    # A window as long as the cache drops nothing: every layer keeps the plain layout.
    short = CausalLMForExport(build_hf_model(arch, "tiny"), config.sliding_window).cache
    assert not short.ring_layers


@pytest.mark.parametrize("arch", ["gemma3-1b", "gemma3-4b"])
def test_chunks_across_the_window_match_transformers(arch):
    reference = build_hf_model(arch, "tiny", seed=0)
    program = etgpu.Model(etgpu.compile(export_llm(build_hf_model(arch, "tiny", seed=0), MAX_SEQ)), device=TEST_DEVICE)
    run = lambda t, p: program.run([t, p])[0]  # noqa: E731
    vocab = reference.config.vocab_size
    for seed, chunks in ((1, CHUNKS), (2, [3, 1, 1])):  # the second sequence restarts at 0 over a full ring
        tokens = _tokens(vocab, sum(chunks), seed)
        expected = _eager_last_logits(reference, tokens, _ends(chunks))
        actual = _run_chunks(run, tokens, chunks)
        errors = [rel_err(a, e) for a, e in zip(actual, expected)]
        assert max(errors) <= 1e-4, f"{arch} seed {seed}: chunk {errors.index(max(errors))} rel-err {max(errors):.3g}"


def test_ring_write_is_in_place(tmp_path):
    """The ring's old window is read (copied by the cat) before the write, and the lowering still
    writes the delegate's buffer in place: no Expand instruction copies a cache first."""
    from etgpu import describe
    from etgpu.ir.Op import Op
    from etgpu.ir.Storage import Storage

    path = tmp_path / "g.etgpu"
    etgpu.compile(export_llm(build_hf_model("gemma3-1b", "tiny"), MAX_SEQ), path)
    [payload] = describe.read_payloads(path)
    text = describe.describe(payload)
    config = build_config("gemma3-1b", "tiny")
    # Every V write and each ring layer's K write; a full layer's K write is fused into its Rope.
    full = config.layer_types.count("full_attention")
    assert 0 < full < config.num_hidden_layers
    assert f"IndexCopy    {2 * config.num_hidden_layers - full}" in text
    # Other expands (of masks, depending on the torch version's decompositions) are fine.
    graph = describe.parse(payload.data).graph
    expanded = [graph.tensors[ins.op.x] for ins in graph.instructions if ins.opType == Op.Expand]
    assert not [t for t in expanded if t.storage == Storage.Mutable]
