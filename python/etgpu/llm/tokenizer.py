"""Tokenizers for the LLM runner, built on the maintained `tokenizers` library: either from the
vocabulary embedded in a GGUF file (GPT-2 style byte-level BPE, the split rule named by
tokenizer.ggml.pre) or from a Hugging Face tokenizer.json.

Streaming text out of a token stream needs care: one character can span several byte-level tokens,
so `StreamDecoder` decodes the whole generated sequence and emits only the new, complete text."""

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from tokenizers import AddedToken, Regex, Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors

# llama.cpp token types (tokenizer.ggml.token_type).
_CONTROL, _USER_DEFINED = 3, 4

# Split rules by tokenizer.ggml.pre. None = the GPT-2 rule built into ByteLevel(use_regex=True).
_GPT2 = None
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Each digit its own piece, then the GPT-2 rule (SmolLM's published tokenizer.json does exactly this).
_DIGITS_THEN_GPT2 = "digits+gpt2"
PRE_TOKENIZERS = {
    "default": _GPT2, "gpt-2": _GPT2, "gpt2": _GPT2,
    "smollm": _DIGITS_THEN_GPT2, "starcoder": _DIGITS_THEN_GPT2, "codeshell": _DIGITS_THEN_GPT2,
    "llama3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT, "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT,
}
# Names that end a turn or a document in common chat vocabularies; generation stops on any present
# besides the declared eos (SmolLM2 declares <|im_end|> but base-style text ends in <|endoftext|>).
_STOP_NAMES = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<end_of_turn>")


def _pre_tokenizer(pre: str):
    if pre not in PRE_TOKENIZERS:
        raise NotImplementedError(f"GGUF pre-tokenizer {pre!r} is not supported (known: {sorted(PRE_TOKENIZERS)})")
    rule = PRE_TOKENIZERS[pre]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=rule is None or rule == _DIGITS_THEN_GPT2)
    if rule is None:
        return byte_level
    if rule == _DIGITS_THEN_GPT2:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(rule), behavior="isolated"), byte_level])


def _gguf_fields(path) -> Dict:
    import gguf

    reader = gguf.GGUFReader(str(path))

    def get(key, default=None):
        field = reader.fields.get(key)
        return default if field is None else field.contents()

    return {key: get(f"tokenizer.{key}") for key in (
        "ggml.model", "ggml.pre", "ggml.tokens", "ggml.token_type", "ggml.merges", "ggml.bos_token_id",
        "ggml.eos_token_id", "ggml.add_bos_token", "ggml.add_eos_token", "chat_template")}


def build_from_gguf_fields(fields: Dict) -> "Tokenizer":
    if fields["ggml.model"] != "gpt2":
        raise NotImplementedError(f"GGUF tokenizer model {fields['ggml.model']!r} is not supported (only 'gpt2' byte-level BPE)")
    tokens: List[str] = list(fields["ggml.tokens"])
    types = list(fields["ggml.token_type"] or [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in fields["ggml.merges"]]
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = _HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = _pre_tokenizer(fields["ggml.pre"] or "default")
    backend.decoder = decoders.ByteLevel()
    # Control tokens stay whole and are special (skippable on decode); user-defined ones stay whole.
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, k in zip(tokens, types) if k == _CONTROL])
    backend.add_tokens([AddedToken(t, special=False, normalized=False)
                        for t, k in zip(tokens, types) if k == _USER_DEFINED])
    bos, eos = fields["ggml.bos_token_id"], fields["ggml.eos_token_id"]
    if fields["ggml.add_bos_token"] and bos is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B", special_tokens=[(tokens[bos], bos)])
    return Tokenizer(backend, bos_id=bos, eos_id=eos, chat_template=fields["chat_template"])


class Tokenizer:
    """encode / decode / stop tokens / optional chat template over a `tokenizers.Tokenizer`."""

    def __init__(self, backend: _HFTokenizer, bos_id: Optional[int] = None, eos_id: Optional[int] = None,
                 chat_template: Optional[str] = None):
        self.backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.chat_template = chat_template

    @classmethod
    def from_gguf(cls, path: Union[str, Path]) -> "Tokenizer":
        return build_from_gguf_fields(_gguf_fields(path))

    @classmethod
    def from_json(cls, path: Union[str, Path]) -> "Tokenizer":
        """A tokenizer.json; bos/eos/chat template come from tokenizer_config.json beside it if present."""
        path = Path(path)
        backend = _HFTokenizer.from_file(str(path))
        config_path = path.with_name("tokenizer_config.json")
        config = json.loads(config_path.read_text()) if config_path.exists() else {}

        def token_id(name):
            value = config.get(name)
            value = value.get("content") if isinstance(value, dict) else value
            return backend.token_to_id(value) if value else None

        return cls(backend, token_id("bos_token"), token_id("eos_token"), config.get("chat_template"))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Tokenizer":
        return cls.from_gguf(path) if str(path).endswith(".gguf") else cls.from_json(path)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def stop_ids(self) -> List[int]:
        ids = {self.eos_id} if self.eos_id is not None else set()
        for name in _STOP_NAMES:
            token = self.backend.token_to_id(name)
            if token is not None:
                ids.add(token)
        return sorted(ids)

    def apply_chat_template(self, messages: List[Dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        import jinja2

        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)

        def raise_exception(message):
            raise jinja2.TemplateError(message)

        env.globals["raise_exception"] = raise_exception
        vocab = self.backend.get_vocab(with_added_tokens=True)
        names = {i: t for t, i in vocab.items()}
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=names.get(self.bos_id, ""), eos_token=names.get(self.eos_id, ""))

    def save(self, path: Union[str, Path]) -> None:
        """tokenizer.json (what the C++ runner reads), plus tokenizer_config.json with bos/eos/template."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(path))
        names = {i: t for t, i in self.backend.get_vocab(with_added_tokens=True).items()}
        config = {"bos_token": names.get(self.bos_id), "eos_token": names.get(self.eos_id)}
        if self.chat_template:
            config["chat_template"] = self.chat_template
        path.with_name("tokenizer_config.json").write_text(json.dumps(config, indent=1))


class StreamDecoder:
    """Turns a growing token list into text pieces. A piece is released only when it does not end
    in U+FFFD, i.e. when the bytes decoded so far form complete UTF-8 characters."""

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: List[int] = []
        self.emitted = 0  # characters already released

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, self.skip)
        if text.endswith("\ufffd"):
            return ""
        piece = text[self.emitted:]
        self.emitted = len(text)
        return piece

    def flush(self) -> str:
        text = self.tokenizer.decode(self.ids, self.skip)
        piece = text[self.emitted:]
        self.emitted = len(text)
        return piece


def ids_to_tokens(tokenizer: Tokenizer, ids: Iterable[int]) -> List[str]:
    return [tokenizer.backend.id_to_token(i) for i in ids]
