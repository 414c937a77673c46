"""A (p, q) model pair over one vocabulary: p is the sampling model (policy), q the reference."""

from __future__ import annotations

from pathlib import Path

import torch

from lmkl.models.errors import VocabularyMismatchError
from lmkl.models.loading import load_causal_lm


def embedding_rows(model: torch.nn.Module) -> int:
    """Number of logit columns the model produces (its output embedding rows)."""
    return int(model.get_output_embeddings().weight.shape[0])


def check_same_vocabulary(tok_p, tok_q) -> None:
    """Raise VocabularyMismatchError unless both tokenizers map the same strings to the same ids and
    agree on their special tokens (EOS ends a sequence: a different EOS changes the event space)."""
    vp, vq = tok_p.get_vocab(), tok_q.get_vocab()
    if len(vp) != len(vq):
        raise VocabularyMismatchError(
            f"p and q have different vocabularies: p's tokenizer has {len(vp)} tokens, q's has {len(vq)}; "
            "KL(p‖q) needs both models over the same vocabulary"
        )
    if vp != vq:
        differ = sorted(t for t in vp.keys() ^ vq.keys())[:5] or sorted(t for t in vp if vp[t] != vq[t])[:5]
        raise VocabularyMismatchError(
            f"p and q have different vocabularies of the same size ({len(vp)} tokens each); "
            f"they differ at {differ!r}"
        )
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        a, b = getattr(tok_p, name), getattr(tok_q, name)
        if a != b:
            raise VocabularyMismatchError(f"p and q have different special tokens: {name} is {a} in p, {b} in q")


def check_model_covers_vocabulary(model: torch.nn.Module, vocab_size: int, which: str) -> None:
    rows = embedding_rows(model)
    if rows < vocab_size:
        raise VocabularyMismatchError(
            f"{which}: the model has {rows} output embedding rows but its tokenizer has {vocab_size} tokens"
        )


class ModelPair:
    """Two causal LMs over one tokenizer vocabulary, for KL(p‖q) with sequences sampled from p.

    `vocab_size` is the tokenizer's (len(tokenizer)). A model may have more output rows than that
    (embedding matrices padded to a multiple of 64, say): those columns are no token's, so their
    logits are set to −inf before any softmax (`lmkl.models.distribution`), never compared.
    `p_name` / `q_name` label the models in error messages (the directory when loaded).
    """

    def __init__(self, p_model, q_model, tokenizer, *, p_name: str = "p", q_name: str = "q"):
        self.p, self.q, self.tokenizer = p_model, q_model, tokenizer
        self.p_name, self.q_name = p_name, q_name
        self.vocab_size = len(tokenizer)
        if tokenizer.eos_token_id is None:
            raise VocabularyMismatchError("the tokenizer has no EOS token: sequences could never end")
        check_model_covers_vocabulary(p_model, self.vocab_size, f"p ({p_name})")
        check_model_covers_vocabulary(q_model, self.vocab_size, f"q ({q_name})")

    @classmethod
    def load(
        cls, p_dir: str | Path, q_dir: str | Path, *, dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> ModelPair:
        """Load both models (offline, `load_causal_lm`) and check that their tokenizers agree."""
        p_model, tok_p = load_causal_lm(p_dir, dtype=dtype, device=device)
        q_model, tok_q = load_causal_lm(q_dir, dtype=dtype, device=device)
        check_same_vocabulary(tok_p, tok_q)
        return cls(p_model, q_model, tok_p, p_name=str(p_dir), q_name=str(q_dir))
