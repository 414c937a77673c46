"""The next-token KL D(h) = Σ_a p(a|h) log p(a|h)/q(a|h), written independently of `lmkl.kl`.

The oracle computes it itself (five lines) so that tests of `lmkl.kl.token_stats` against the oracle
compare two implementations, not one with itself.
"""

from __future__ import annotations

import torch


def local_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """[...] KL(p(·|h) ‖ q(·|h)) over the last dimension; 0·log 0 = 0, p > 0 = q gives +inf."""
    log_p = torch.log_softmax(logits_p, dim=-1)
    log_q = torch.log_softmax(logits_q, dim=-1)
    p = log_p.exp()
    # Select before multiplying: where p = 0 the term is 0 even if log q = −inf (0·∞ would be NaN),
    # and its gradient is 0 rather than NaN.
    support = p > 0
    diff = torch.where(support, log_p - log_q, torch.zeros_like(log_p))
    return torch.where(support, p * diff, torch.zeros_like(p)).sum(-1)
