"""Prompt construction (lmkl.assets.prompts) on small in-test datasets: UCI-style word prefixes
(tiny/smollm2 profiles) and TRL-style token prefixes of reviews (paper profile)."""

from __future__ import annotations

import json

import pytest

from lmkl.assets import prompts

SENTENCES = [
    "A very slow moving aimless movie about a distressed drifting young man",
    "Not sure who was more lost, the flat characters or the audience",
    "Loved it",  # 2 words: too short for a 2-word prefix that leaves a word to continue
    "Great",
    "The acting was superb and the plot kept me guessing until the very end of it",
    "I would not watch this again",
]


def test_word_prefixes_are_prefixes_within_bounds_and_leave_a_word():
    out = prompts.word_prefixes(SENTENCES, min_words=2, max_words=8, seed=0)
    assert len(out) == 4  # the 2-word and 1-word sentences give no prompt
    long_ones = [s for s in SENTENCES if len(s.split()) >= 3]
    for p, s in zip(out, long_ones):
        k = len(p.split())
        assert 2 <= k <= min(8, len(s.split()) - 1)
        assert s.split()[:k] == p.split()


def test_word_prefixes_seeded_and_seed_sensitive():
    a = prompts.word_prefixes(SENTENCES * 20, min_words=2, max_words=8, seed=1)
    assert a == prompts.word_prefixes(SENTENCES * 20, min_words=2, max_words=8, seed=1)
    assert a != prompts.word_prefixes(SENTENCES * 20, min_words=2, max_words=8, seed=2)
    # Both ends of {2..8} are reachable (an exclusive upper end, as in TRL's LengthSampler, would never
    # give 8): 60 draws on sentences of ≥ 10 words. Deterministic for this seed; under a correct sampler
    # a length is missed with probability ≤ 7·(6/7)^60 < 0.001, so the check is not seed-fragile.
    lengths = {len(p.split()) for p, s in zip(a, [s for s in SENTENCES * 20 if len(s.split()) >= 3]) if len(s.split()) > 9}
    assert lengths == set(range(2, 9))


def test_token_prefixes_follow_trl_recipe():
    # a word-level "tokenizer": token i = i-th word; decode joins with spaces
    vocab: dict[str, int] = {}
    inv: dict[int, str] = {}

    def encode(t):
        return [vocab.setdefault(w, len(vocab)) for w in t.split()]

    def decode(ids):
        inv.update({i: w for w, i in vocab.items()})
        return " ".join(inv[i] for i in ids)

    long_review = " ".join(["word"] * 10 + ["great", "film"] * 100)
    short_review = "too short to keep " * 5  # 90 characters ≤ 200: filtered out as in TRL
    out = prompts.token_prefixes([long_review, short_review, long_review], encode, decode,
                                 min_tokens=2, max_tokens=8, seed=0)
    assert len(out) == 2
    for p in out:
        assert 2 <= len(p.split()) <= 8 and long_review.startswith(p)


def test_split_unique_and_jsonl_roundtrip(tmp_path):
    train, test = prompts.split_indices(100, 0.2, seed=0)
    assert len(test) == 20 and len(train) == 80 and not set(train) & set(test)
    assert (train, test) == prompts.split_indices(100, 0.2, seed=0)
    assert prompts.unique(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
    assert prompts.unique(["a", "b", "a", "c"], limit=2) == ["a", "b"]
    texts = ["plain", "with \u0085 next-line and \u2028 separator", 'quote " and é']
    path = prompts.write_prompts(tmp_path / "p.jsonl", texts)
    assert prompts.read_prompts(path) == texts
    lines = path.read_text(encoding="utf-8").splitlines()  # even splitlines() sees one record per line
    assert [json.loads(x)["prompt"] for x in lines] == texts
    with pytest.raises(ValueError, match="empty"):
        prompts.write_prompts(tmp_path / "e.jsonl", [])


def test_bad_ranges_name_the_argument():
    with pytest.raises(ValueError, match="min_words"):
        prompts.word_prefixes(SENTENCES, min_words=5, max_words=2, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        prompts.split_indices(10, 1.0, seed=0)


def test_uci_corpus_is_complete_and_balanced():
    from lmkl.assets.corpus import load_uci

    data = load_uci()
    assert len(data) == 3000
    for source in ("imdb", "amazon", "yelp"):
        labels = [s.label for s in data if s.source == source]
        assert len(labels) == 1000 and sum(labels) == 500
    assert all(s.text and s.text == s.text.strip() for s in data)
