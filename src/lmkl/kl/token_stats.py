"""Per-token statistics of a sampled sequence under p (the sampling model) and q."""

from __future__ import annotations

from typing import NamedTuple

import torch

from lmkl.kl import backends
from lmkl.kl.validation import check_logits_pair, check_no_nan, check_tokens_mask


class TokenStats(NamedTuple):
    """Per-position statistics, each [B, T], zero where `mask` is False.

    logp = log p(y_t | y_<t), logq = log q(y_t | y_<t), kl = KL(p(·|y_<t) ‖ q(·|y_<t)) (exact, over
    the whole vocabulary). float32, or float64 when the logits were float64.
    """

    logp: torch.Tensor
    logq: torch.Tensor
    kl: torch.Tensor
    mask: torch.Tensor

    @property
    def log_ratio(self) -> torch.Tensor:
        """u_t = log p(y_t|·) − log q(y_t|·), [B, T], zero where masked."""
        return self.logp - self.logq


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


def concat_stats(parts: list[TokenStats]) -> TokenStats:
    """Stack TokenStats [B_i, T_i] along the batch, zero/False-padding the positions to max T_i
    (padding is masked out, so every estimator sees the same sequences)."""
    if not parts:
        raise ValueError("parts: expected at least one TokenStats")
    T = max(s.mask.shape[1] for s in parts)  # widest response

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, T - x.shape[1]))  # zeros; False for the bool mask

    return TokenStats(*(torch.cat([pad(f) for f in field], dim=0) for field in zip(*parts)))


def assemble(logp_n, logq_n, kl_n, mask: torch.Tensor, names: tuple[str, str, str]) -> TokenStats:
    """TokenStats [B, T] from the [N] statistics of the real rows, after refusing NaN ones: `names`
    say which inputs a NaN in logp, logq or kl comes from."""
    rows = mask.nonzero()  # [N, 2] (batch, position) of the real positions
    for values, which in zip((logp_n, logq_n, kl_n), names):
        check_no_nan(values, which, rows)
    return TokenStats(
        logp=_scatter(logp_n, mask), logq=_scatter(logq_n, mask), kl=_scatter(kl_n, mask), mask=mask
    )


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place the [N] row values at the True positions of a [B, T] zero tensor (differentiably)."""
    out = values.new_zeros(mask.shape)
    return out.masked_scatter(mask, values)
