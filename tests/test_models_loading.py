"""Offline loading and the vocabulary checks of a model pair."""

from __future__ import annotations

import socket

import pytest
import torch

import models_fixtures
from lmkl.models import ModelLoadError, ModelPair, VocabularyMismatchError, load_causal_lm, next_token_logits
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

tiny_dirs = models_fixtures.tiny_dirs  # module-scoped fixture shared by the model tests


def test_loads_offline_without_touching_the_network(tiny_dirs, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model, tok = load_causal_lm(tiny_dirs.p)
    assert not model.training  # eval mode: no dropout between sampling and scoring
    assert len(tok) == 300 and model.get_output_embeddings().weight.shape[0] == 304


def test_missing_directory_and_hub_ids_are_refused_by_path(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nope")):
        load_causal_lm(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="gpt2"):
        load_causal_lm("gpt2")  # a hub id is not a local directory: refused, never downloaded
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_causal_lm(tmp_path / "empty")


def test_different_vocabularies_name_both_sizes(tiny_dirs, tmp_path):
    tok2 = build_tiny_tokenizer(tmp_path / "tok2", vocab_size=280)
    other = build_tiny_gpt2(tmp_path / "other", 280, seed=0, tokenizer_dir=tok2)
    with pytest.raises(VocabularyMismatchError, match=r"300 tokens.*280"):
        ModelPair.load(tiny_dirs.p, other)


def test_same_size_different_tokens_is_a_mismatch(tiny_dirs, tmp_path):
    corpus = ("completely different words here", "zebra quartz jumps over vexing fjords", "xylophone")
    tok2 = build_tiny_tokenizer(tmp_path / "tok2", vocab_size=300, corpus=corpus)
    other = build_tiny_gpt2(tmp_path / "other", 300, seed=0, tokenizer_dir=tok2)
    with pytest.raises(VocabularyMismatchError, match="same size"):
        ModelPair.load(tiny_dirs.p, other)


def test_model_smaller_than_its_tokenizer_is_refused(tiny_dirs, tmp_path):
    small = build_tiny_gpt2(tmp_path / "small", 290, seed=0, tokenizer_dir=tiny_dirs.tokenizer)
    with pytest.raises(VocabularyMismatchError, match=r"290 output embedding rows.*300 tokens"):
        ModelPair.load(small, tiny_dirs.q)


def test_padding_columns_get_no_probability_and_the_rest_is_untouched():
    raw = torch.randn(2, 3, 10)
    z = next_token_logits(raw, vocab_size=7, temperature=0.5)
    assert torch.isinf(z[..., 7:]).all() and (z[..., 7:] < 0).all()
    torch.testing.assert_close(z[..., :7], raw[..., :7] / 0.5)
    assert torch.isfinite(raw).all()  # the model's own logits are not modified in place
