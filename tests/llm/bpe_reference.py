"""A deliberately plain byte-level BPE (GPT-2 algorithm) used only as an independent reference in
tests: special tokens split out first, then each digit alone, then the GPT-2 split rule, then merges
by rank. It shares no code with etgpu's tokenizers."""

import regex

_GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


class ReferenceBPE:
    def __init__(self, tokens, merges, special_tokens, split_digits=True):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
        self.specials = sorted(special_tokens, key=len, reverse=True)
        self.split_digits = split_digits
        self.spell = byte_to_unicode()

    def _bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [self.vocab[p] for p in parts]

    def _pieces(self, text):
        chunks = regex.split(r"(\p{N})", text) if self.split_digits else [text]
        for chunk in chunks:
            yield from _GPT2_SPLIT.findall(chunk)

    def encode(self, text):
        ids = []
        pattern = "(" + "|".join(regex.escape(s) for s in self.specials) + ")" if self.specials else None
        for segment in (regex.split(pattern, text) if pattern else [text]):
            if segment in self.specials:
                ids.append(self.vocab[segment])
                continue
            for piece in self._pieces(segment):
                ids.extend(self._bpe("".join(self.spell[b] for b in piece.encode("utf-8"))))
        return ids
