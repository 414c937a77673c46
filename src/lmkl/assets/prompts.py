"""Prompts: short prefixes of review text, cut with a seeded length, written as JSONL.

Two ways to cut, one per kind of source text:
- `word_prefixes` (tiny, smollm2 profiles; UCI sentences): the first k whitespace-separated words,
  k ~ Uniform{min_words, ..., max_words}, capped so that at least one word of the sentence is left
  for the model to continue; sentences shorter than min_words + 1 words give no prompt.
- `token_prefixes` (paper profile; IMDB reviews): TRL's sentiment example (`examples/scripts/ppo`,
  "gpt2-sentiment"): keep reviews longer than 200 characters, encode with the policy's tokenizer,
  keep the first k tokens, k ~ Uniform{min_tokens, ..., max_tokens}, decode. The authors' prompt files
  are not public (paper-digest §5); this is the construction their setup descends from.

Both are deterministic given the seed (numpy's PCG64), and `unique` drops repeated prompts, keeping
the first occurrence (the authors' code deduplicates prompts too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from lmkl.atomic import atomic_write_text


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random split of range(n): (train, test), each sorted; test has round(n·fraction) items."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a fraction in (0, 1), got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    return sorted(perm[n_test:].tolist()), sorted(perm[:n_test].tolist())


def word_prefixes(texts: Sequence[str], *, min_words: int, max_words: int, seed: int) -> list[str]:
    """The first k words of each text (k seeded, see module doc), in input order; short texts skipped."""
    _check_range("min_words", "max_words", min_words, max_words)
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        k = int(rng.integers(min_words, max_words + 1))  # drawn for every text: one text never shifts another's k
        words = text.split()
        k = min(k, len(words) - 1)
        if k >= min_words:
            out.append(" ".join(words[:k]))
    return out


def token_prefixes(
    texts: Sequence[str],
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    *,
    min_tokens: int,
    max_tokens: int,
    seed: int,
    min_chars: int = 200,
) -> list[str]:
    """TRL-style prompts: decode(encode(text)[:k]) for texts longer than `min_chars` characters."""
    _check_range("min_tokens", "max_tokens", min_tokens, max_tokens)
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        if len(text) <= min_chars:
            continue
        k = int(rng.integers(min_tokens, max_tokens + 1))
        prompt = decode(encode(text)[:k])
        if prompt.strip():
            out.append(prompt)
    return out


def unique(prompts: Iterable[str], limit: int | None = None) -> list[str]:
    """Prompts without repeats (first occurrence kept, order kept), at most `limit` of them."""
    seen: dict[str, None] = {}
    for p in prompts:
        if limit is not None and len(seen) >= limit:
            break
        seen.setdefault(p, None)
    return list(seen)


def write_prompts(path: str | Path, prompts: Sequence[str]) -> Path:
    """One `{"prompt": ...}` per line (ASCII-escaped JSON: no Unicode line break inside a record), written atomically."""
    if not prompts:
        raise ValueError(f"{path}: refusing to write an empty prompt file")
    return atomic_write_text(path, "".join(json.dumps({"prompt": p}) + "\n" for p in prompts))


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a file written by `write_prompts` (the format the train/evaluate stages read)."""
    return [json.loads(line)["prompt"] for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def _check_range(lo_name: str, hi_name: str, lo: int, hi: int) -> None:
    if not 1 <= lo <= hi:
        raise ValueError(f"{lo_name}/{hi_name}: expected 1 ≤ {lo_name} ≤ {hi_name}, got ({lo}, {hi})")
