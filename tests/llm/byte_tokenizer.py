"""A 512-token byte-level BPE tokenizer made up on the spot (the 256 byte tokens, then 256 merges
of two lowercase letters a..p): every id a tiny-scale model can emit decodes to text, and the
runner tests need no downloaded tokenizer."""

from tokenizers import pre_tokenizers

from etgpu.llm.tokenizer import Tokenizer, build_from_gguf_fields

LETTERS = "abcdefghijklmnop"


def byte_tokenizer() -> Tokenizer:
    byte_tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = [f"{a} {b}" for a in LETTERS for b in LETTERS]
    tokens = byte_tokens + [m.replace(" ", "") for m in merges]
    return build_from_gguf_fields({
        "ggml.model": "gpt2", "ggml.pre": "gpt2", "ggml.tokens": tokens, "ggml.token_type": None,
        "ggml.merges": merges, "ggml.bos_token_id": None, "ggml.eos_token_id": None,
        "ggml.add_bos_token": False, "ggml.add_eos_token": False, "chat_template": None})
