"""TokenStats, the per-token statistics every estimator and surrogate reads, and the two helpers that
build it (`assemble` from per-row values, `concat_stats` along the batch).

Shared by `lmkl.kl.token_stats` (from logits) and `lmkl.kl.backends.fused_linear` (from hidden
states); it imports no backend, so neither path imports the other.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lmkl.kl.validation import check_no_nan


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
