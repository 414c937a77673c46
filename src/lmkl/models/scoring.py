"""Score sampled responses: one teacher-forced forward pass per model, statistics on response positions.

What is estimated: with y ~ p̃ (the sampling distribution: p tempered by τ, truncated only if the
rollout used top-k/top-p), the statistics are those of KL(p̃ ‖ q̃) where q̃ is q tempered by the same
τ and **never truncated**: a truncated q would put zero mass on tokens that p̃ can sample and make
the KL infinite for any two different models. Without truncation (the default) this is the KL
between the tempered models; at τ = 1, between the models themselves. Responses cut at
max_new_tokens contribute their first T positions only (the KL between the length-capped processes).
"""

from __future__ import annotations

import torch

from lmkl.kl import TokenStats, concat_stats, token_stats
from lmkl.models._compat import keep_last_logits_kwargs
from lmkl.models.distribution import next_token_logits
from lmkl.models.errors import NonFiniteLogitsError
from lmkl.models.pair import ModelPair
from lmkl.models.prompts import position_ids
from lmkl.models.rollout import Rollout


def response_logits(
    model,
    rollout: Rollout,
    *,
    temperature: float | None = None,
    vocab_size: int | None = None,
    truncate: bool = True,
) -> torch.Tensor:
    """Logits z [B, T, V_model] of the sampling distribution at each response position (teacher forcing).

    One forward pass on prompt + response[:-1] (the last token is never a context) with the rollout's
    attention mask and left-padding position ids — the same positions the sampler used — so that
    z[b, t] is the distribution response[b, t] was drawn from when `model` is the sampler:
    `next_token_logits(raw, temperature, vocab_size, top_k, top_p)` (padding columns ≥ vocab_size
    −inf; rollout's top-k/top-p applied if `truncate`). temperature: default the rollout's.
    Keeps the autograd graph if grad is enabled. Values at masked positions are meaningless.
    """
    T = rollout.response.shape[1]  # response width
    tau = rollout.temperature if temperature is None else temperature
    inputs = rollout.input_ids[:, :-1]  # [B, P+T-1]: column P-1+t predicts response token t
    attn = rollout.attention_mask[:, :-1]
    out = model(
        input_ids=inputs, attention_mask=attn, position_ids=position_ids(attn), use_cache=False,
        **keep_last_logits_kwargs(model, T),
    )
    raw = out.logits[:, -T:]  # [B, T, V_model]
    top_k, top_p = (rollout.top_k, rollout.top_p) if truncate else (None, None)
    return next_token_logits(raw, temperature=tau, vocab_size=vocab_size, top_k=top_k, top_p=top_p)


def check_finite_logits(z: torch.Tensor, mask: torch.Tensor, which: str, row_offset: int = 0) -> None:
    """Raise NonFiniteLogitsError naming `which` and the first (sequence, response position) where a
    real position has a NaN or +inf logit (−inf is legal: a masked token)."""
    bad = (torch.isnan(z) | (z == float("inf"))).any(dim=-1) & mask  # [B, T]
    if bool(bad.any()):
        b, t = (int(v) for v in bad.nonzero()[0])
        raise NonFiniteLogitsError(
            f"model {which}: NaN or +inf logits at sequence {b + row_offset}, response position {t}"
        )


def score_rollout(
    pair: ModelPair, rollout: Rollout, *, micro_batch: int | None = None, backend: str = "auto"
) -> TokenStats:
    """Per-token statistics of the rollout under p (the sampler) and q: `lmkl.kl.token_stats` on
    response positions only (mask = rollout.response_mask), [B, T] fields.

    micro_batch: rows per forward pass (default: all); only one micro-batch's logits of both models,
    2 · micro_batch · T · V floats, are alive at a time. q's pass runs without autograd (a reference
    model is never trained); p's keeps the graph if grad is enabled.
    Raises NonFiniteLogitsError naming the model and position on NaN/+inf logits.
    """
    B = len(rollout)  # sequences
    step = B if micro_batch is None else int(micro_batch)
    if step < 1:
        raise ValueError(f"micro_batch: expected an integer ≥ 1 or None, got {micro_batch}")
    V = pair.vocab_size  # the tokenizer's: columns beyond it are embedding padding (probability 0)
    parts: list[TokenStats] = []
    for start in range(0, B, step):
        mb = rollout.select(slice(start, start + step))
        mask = mb.response_mask
        zp = response_logits(pair.p, mb, vocab_size=V)[..., :V]
        check_finite_logits(zp, mask, f"p ({pair.p_name})", start)
        with torch.no_grad():
            zq = response_logits(pair.q, mb, vocab_size=V, truncate=False)[..., :V]
        check_finite_logits(zq, mask, f"q ({pair.q_name})", start)
        parts.append(token_stats(zp, zq, mb.response, mask, backend=backend))
    return concat_stats(parts)
