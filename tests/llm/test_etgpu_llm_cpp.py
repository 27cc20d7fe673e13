"""The C++ runner (build/runtime/tools/etgpu_llm): its own tokenizer against the Python one (which
tests/llm/test_tokenizer.py checks against two references), from the GGUF file and from the
exported tokenizer.json; and generation end to end on the engine under test (ETGPU_TEST_DEVICE)
with a made-up tokenizer, so that part needs no downloaded file."""

import json
import subprocess

import pytest

from byte_tokenizer import byte_tokenizer
from etgpu._paths import build_dir
from parity import TEST_DEVICE
from smollm2_file import SMOLLM2_GGUF, requires_smollm2
from tokenizer_corpus import corpus

BINARY = build_dir() / "runtime" / "tools" / "etgpu_llm"
needs_binary = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is not built")

# Beyond the shared corpus: control bytes (some have no token in SmolLM2's vocabulary and are
# dropped by both), every ASCII character, and letters/numbers outside the common blocks.
EXTRA = ["\x01\x02\x03 control \x7f bytes", "".join(chr(c) for c in range(32, 127)), "ǅ ǈ ᾈ Ⅻ ½ ² ٣ ໓ 𝟘 𝔸",
         "ñ" * 50 + " " + "ab" * 40, "x'sy'LLz'", "tab\tnl\nvt\x0bff\x0ccr\r nbsp\u00a0end"]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from etgpu.llm.tokenizer import Tokenizer

    return Tokenizer.from_gguf(SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def tokenizer_json(smollm2_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    smollm2_tokenizer.save(path)
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    """(Tokenizer, its tokenizer.json): 512 tokens, the tiny recipes' vocabulary size."""
    tokenizer = byte_tokenizer()
    path = tmp_path_factory.mktemp("tiny_tok") / "tokenizer.json"
    tokenizer.save(path)
    return tokenizer, path


def _cpp_tokenize(tokenizer_file, strings, tmp_path):
    source = tmp_path / "strings.json"
    source.write_text(json.dumps(strings))
    run = subprocess.run([str(BINARY), "--tokenizer", str(tokenizer_file), "--tokenize-only", str(source)],
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    return [json.loads(line) for line in run.stdout.decode("utf-8").splitlines()]


@needs_binary
@requires_smollm2
@pytest.mark.parametrize("source", ["gguf", "tokenizer.json"])
def test_cpp_tokenizer_matches_python(source, smollm2_tokenizer, tokenizer_json, tmp_path):
    tokenizer = smollm2_tokenizer
    strings = corpus() + EXTRA
    results = _cpp_tokenize(SMOLLM2_GGUF if source == "gguf" else tokenizer_json, strings, tmp_path)
    assert len(results) == len(strings)
    bad = [(s, r["ids"], tokenizer.encode(s)) for s, r in zip(strings, results) if r["ids"] != tokenizer.encode(s)]
    assert not bad, f"{len(bad)}/{len(strings)} differ, first: {bad[0]}"
    undecoded = [(s, r["text"]) for s, r in zip(strings, results) if r["text"] != tokenizer.decode(r["ids"])]
    assert not undecoded, f"{len(undecoded)} decodes differ, first: {undecoded[0]}"


@needs_binary
@requires_smollm2
def test_cpp_tokenizer_rejects_bad_files(tmp_path):
    truncated = tmp_path / "bad.gguf"
    truncated.write_bytes(open(SMOLLM2_GGUF, "rb").read(5000))
    strings = tmp_path / "s.json"
    strings.write_text('["x"]')
    run = subprocess.run([str(BINARY), "--tokenizer", str(truncated), "--tokenize-only", str(strings)],
                         capture_output=True, timeout=60)
    # The array's declared count cannot fit in what is left of the file: refused before allocating.
    assert run.returncode == 1 and b"tokenizer.ggml.tokens" in run.stderr and b"past the end" in run.stderr
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [')
    run = subprocess.run([str(BINARY), "--tokenizer", str(broken), "--tokenize-only", str(strings)],
                         capture_output=True, timeout=60)
    assert run.returncode == 1 and b"tokenizer" in run.stderr


def _tiny_llama_etgpu(tmp_path, max_seq_len):
    """A tiny random Llama (vocabulary 512, as the tiny tokenizer's)."""
    import etgpu
    from etgpu.llm import build_hf_model, export_llm

    path = tmp_path / "tiny.etgpu"
    etgpu.compile(export_llm(build_hf_model("llama3.2-1b", "tiny", seed=0), max_seq_len), path)
    return path


@needs_binary
def test_cpp_prompt_past_cache_is_a_clear_error(tiny_tokenizer, tmp_path):
    model = _tiny_llama_etgpu(tmp_path, 8)
    prompt = "one two three four five six seven"
    assert len(tiny_tokenizer[0].encode(prompt)) > 8
    for prompt, new_tokens in ((prompt, 1), ("one", 9)):  # the prompt alone, then prompt + generation
        run = subprocess.run([str(BINARY), str(model), "--tokenizer", str(tiny_tokenizer[1]), "--device", TEST_DEVICE,
                              "--prompt", prompt, "--max-new-tokens", str(new_tokens)], capture_output=True, timeout=120)
        assert run.returncode == 1 and b"max_seq_len=8" in run.stderr, run.stderr.decode()


@needs_binary
def test_cpp_greedy_matches_python_runner(tiny_tokenizer, tmp_path):
    import etgpu
    from etgpu.llm.generate import generate, model_runner

    tokenizer, tokenizer_path = tiny_tokenizer
    model_path = _tiny_llama_etgpu(tmp_path, 64)
    prompt = "he is in the on at"
    ids = tokenizer.encode(prompt)
    expected = generate(model_runner(etgpu.Model(model_path, device=TEST_DEVICE)), ids, 20, 64).tokens
    run = subprocess.run([str(BINARY), str(model_path), "--tokenizer", str(tokenizer_path), "--device", TEST_DEVICE,
                          "--prompt", prompt, "--max-new-tokens", "20"], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode() == tokenizer.decode(expected, skip_special_tokens=True) + "\n"
    assert b"decode" in run.stderr and b"TTFT" in run.stderr
    if TEST_DEVICE == "cuda":
        assert b"peak device memory" in run.stderr
