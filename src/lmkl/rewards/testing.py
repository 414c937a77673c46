"""A tiny offline sentiment classifier for tests (no model hub, no network), like lmkl.models.testing.

    clf_dir = build_tiny_classifier(tmp / "clf")      # random 2-layer DistilBERT + byte-level BPE tokenizer
    reward = make_reward("classifier", clf_dir)
"""

from __future__ import annotations

from pathlib import Path

import torch


def build_tiny_classifier(directory: str | Path, *, id2label: dict[int, str] | None = None, seed: int = 0) -> Path:
    """Save a random DistilBertForSequenceClassification (dim 32, 2 layers) with its tokenizer to `directory`.

    id2label defaults to {0: NEGATIVE, 1: POSITIVE}, as in lvwerra/distilbert-imdb. Returns the directory.
    """
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from lmkl.models.testing import build_tiny_tokenizer

    id2label = id2label or {0: "NEGATIVE", 1: "POSITIVE"}
    directory = build_tiny_tokenizer(directory)
    tok = AutoTokenizer.from_pretrained(directory)
    config = DistilBertConfig(
        vocab_size=len(tok), dim=32, hidden_dim=64, n_layers=2, n_heads=2, max_position_embeddings=64,
        id2label=id2label, label2id={v: k for k, v in id2label.items()}, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    DistilBertForSequenceClassification(config).eval().save_pretrained(directory)
    return Path(directory)
