"""Strings for tokenizer agreement tests: hand-picked edge cases plus seeded random mixes of
ASCII words, accented and non-Latin letters, emoji, whitespace runs, digits, punctuation and code."""

import random

EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n", "\t", " \n ", "a", "Hello, world!", "Hello world", " Hello", "Hello ",
    "The quick brown fox jumps over the lazy dog.", "I'm sure you'll see they've done it, haven't they?",
    "It's 3.14159 and 2024-11-29, or 1,000,000 people.", "0", "00", "12345678901234567890", "x1y22z333",
    "café naïve résumé Straße", "日本語のテキスト", "中文 字符", "Привет, мир!", "مرحبا بالعالم", "🙂🚀 emoji 👍🏽",
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "    indented\n\tand tabbed\r\n", "trailing spaces   ", "   leading spaces", "a  b   c    d",
    "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|>", "text<|im_end|>more", "'s 't 're 've 'm 'll 'd",
    "don't can't won't", "UPPER lower MiXeD", "email@example.com http://x.y/z?q=1&r=2", "$100 €20 £5 ¥1000",
    "\u00a0non-breaking\u2009thin\u3000ideographic", "zero\u200bwidth", "combining e\u0301 a\u0308",
]

_WORDS = ["the", "model", "token", "GPU", "kernel", "über", "naïve", "日本", "данные", "emoji", "🙂", "x",
          "return", "if", "else", "{", "}", "(", ")", ";", "==", "->", "'s", "'ll", "don't", "α", "β", "∑"]
_SPACES = [" ", " ", " ", "  ", "\n", "\t", "   ", "\n\n", " \n", "\r\n"]


def random_strings(count: int = 200, seed: int = 0):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.5:
                pieces.append(rng.choice(_WORDS))
            elif kind < 0.65:
                pieces.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
            elif kind < 0.8:
                pieces.append("".join(chr(rng.randint(0x21, 0x7e)) for _ in range(rng.randint(1, 4))))
            else:
                pieces.append(chr(rng.choice([rng.randint(0xa1, 0x24f), rng.randint(0x400, 0x4ff),
                                              rng.randint(0x4e00, 0x9fff), rng.randint(0x1f600, 0x1f64f)])))
            pieces.append(rng.choice(_SPACES))
        out.append("".join(pieces[: rng.randint(1, len(pieces))]))
    return out


def corpus():
    return EDGE_CASES + random_strings()
