"""Pretraining library (lmkl.assets.pretrain) and the tiny profile's tokenizer, on in-test data."""

from __future__ import annotations

import math

import torch

from lmkl.assets.pretrain import (
    GPT2Shape,
    PretrainSchedule,
    build_gpt2,
    collate,
    encode_sentences,
    heldout_nll,
    pretrain_lm,
)
from lmkl.assets.tokenizer import EOS_TOKEN, train_bpe_tokenizer
from lmkl.models.testing import CORPUS


def _setup(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_bpe_tokenizer(list(CORPUS), tmp_path / "tok", vocab_size=300,
                                                            model_max_length=64))
    seqs = encode_sentences(tok, list(CORPUS), 64)
    shape = GPT2Shape(vocab_size=len(tok), n_layer=1, n_head=2, n_embd=32, n_positions=64)
    return tok, seqs, shape


def test_tokenizer_eos_is_pad_and_no_bos_is_added(tmp_path):
    tok, seqs, _ = _setup(tmp_path)
    assert tok.eos_token == tok.pad_token == tok.bos_token == EOS_TOKEN and tok.eos_token_id == 0
    ids = tok("The plot was thin")["input_ids"]
    assert 0 not in ids and tok.decode(ids) == "The plot was thin"  # byte-level: lossless, no specials added
    assert all(s[-1] == 0 and 0 not in s[:-1] for s in seqs)  # every training sequence ends with (only) EOS


def test_pretraining_learns_and_is_reproducible(tmp_path):
    tok, seqs, shape = _setup(tmp_path)
    sched = PretrainSchedule(steps=60, batch_size=4, lr=3e-3, warmup_steps=5, weight_decay=0.0, seed=0)
    m1 = build_gpt2(shape, eos_token_id=0, seed=0)
    before, n = heldout_nll(m1, seqs, pad_id=0)
    # A fresh model predicts ≈ uniformly: NLL ≈ log V (initial weights have std 0.02, so within 0.1 nat).
    assert abs(before - math.log(len(tok))) < 0.1
    r1 = pretrain_lm(m1, seqs, seqs, sched, pad_id=0)
    # 60 steps over 8 sentences (30 epochs) must fit them well: more than 2 nats below the start
    # (a broken loss mask, shift or optimizer leaves the NLL near log V ≈ 5.7).
    assert r1.heldout_nll < before - 2 and r1.heldout_targets == n
    assert math.isclose(r1.heldout_perplexity, math.exp(r1.heldout_nll))
    m2 = build_gpt2(shape, eos_token_id=0, seed=0)
    r2 = pretrain_lm(m2, seqs, seqs, sched, pad_id=0)
    assert r2.heldout_nll == r1.heldout_nll  # seeded: same batches, same initialisation, same result
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_padding_carries_no_loss(tmp_path):
    _, seqs, shape = _setup(tmp_path)
    model = build_gpt2(shape, eos_token_id=0, seed=1).eval()
    alone = [heldout_nll(model, [s], pad_id=0) for s in seqs]
    together, count = heldout_nll(model, seqs, pad_id=0, batch_size=len(seqs))
    assert count == sum(len(s) - 1 for s in seqs) == sum(c for _, c in alone)
    # right padding must not change any real position's prediction (causal attention): equal up to
    # float32 summation order, 1e-5 relative
    expected = sum(v * c for v, c in alone) / count
    assert abs(together - expected) < 1e-5 * expected
    ids, mask = collate(seqs[:2], pad_id=0)
    assert ids.shape == mask.shape and mask.sum() == len(seqs[0]) + len(seqs[1])


def test_epoch_batches_cover_every_sentence_once_with_little_padding():
    from lmkl.assets.pretrain import epoch_batches

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 80, (1000,), generator=torch.Generator().manual_seed(1)).tolist()
    batches = epoch_batches(lengths, 32, g)
    assert sorted(i for b in batches for i in b) == list(range(1000)) and max(len(b) for b in batches) == 32
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    # sorted spans of 512 uniform lengths: each batch's spread is ~1/16 of the range, so ≤ 15 % padding
    # (random batches of 32 would pad to ≈ the maximum, ~90 % more tokens than the sentences hold)
    assert padded < 1.15 * sum(lengths)
    assert batches != epoch_batches(lengths, 32, g)  # the next epoch is another permutation
