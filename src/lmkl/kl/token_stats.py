"""Per-token statistics of a sampled sequence under p (the sampling model) and q, from logits."""

from __future__ import annotations

import torch

from lmkl.kl import backends
from lmkl.kl.stats import TokenStats, assemble, concat_stats
from lmkl.kl.validation import check_logits_pair, check_tokens_mask

__all__ = ["TokenStats", "assemble", "concat_stats", "token_stats"]


def token_stats(
    logits_p: torch.Tensor,
    logits_q: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    backend: str = "auto",
) -> TokenStats:  # KL(p ‖ q), y ~ p
    """Log-probabilities of the sampled tokens and the exact next-token KL at every position.

    Args:
      logits_p: [B, T, V] next-token logits of p, the model the tokens were sampled from, at each position.
      logits_q: [B, T, V] next-token logits of q at the same positions.
      tokens: [B, T] integer sampled tokens (EOS included as the last real position).
      mask: [B, T] bool, True at real positions. Logits at masked positions are never read (junk,
        NaN, anything is fine there) and get zero gradient.
      backend: "auto" or a name in `lmkl.kl.backends.available()`.
    Returns:
      TokenStats with logp, logq, kl [B, T] (zero where masked) and the mask. Differentiable with
      respect to both logits. −inf logits are legal: p > 0 = q gives kl = +inf, p = 0 adds nothing.
    Raises:
      ValueError naming the argument on shape, dtype, vocabulary or token-range mismatches, and on
      NaN logits at an unmasked position.
    """
    B, T, V = check_logits_pair(logits_p, logits_q)  # batch, positions, vocabulary
    check_tokens_mask(tokens, mask, B, T, V)
    fn = backends.resolve(backend, logits_p)
    # Only the real rows enter any computation (junk at masked positions is never read and gets zero
    # gradient). A backend that takes a row index reads them in place from the [B·T, V] views;
    # otherwise the N real rows are gathered first, which copies them unless every position is real.
    flat_p, flat_q = logits_p.reshape(B * T, V), logits_q.reshape(B * T, V)  # views when contiguous
    flat_tok = tokens.reshape(B * T).long()
    if bool(mask.all()):
        logp_n, logq_n, kl_n = fn(flat_p, flat_q, flat_tok)
    elif getattr(fn, "accepts_row_index", False):
        index = mask.reshape(B * T).nonzero().squeeze(-1)  # [N] flat indices of the real rows
        logp_n, logq_n, kl_n = fn(flat_p, flat_q, flat_tok, rows=index)
    else:
        logp_n, logq_n, kl_n = fn(logits_p[mask], logits_q[mask], tokens[mask].long())  # each [N]
    return assemble(logp_n, logq_n, kl_n, mask, ("logits_p", "logits_q", "logits_p/logits_q"))
