"""Surrogate losses whose gradient estimates ∇θ KL(p_θ‖q) from samples y ~ p_θ.

Every form returns [B] per-sequence losses. Their forward value is the matching value estimate
(mc for mc_*, rb for rb_*, k3_token for k3_loss); the score-function parts enter through
`_score(x) = x − stopgrad(x)`, which is 0 in value and ∇x in gradient (DiCE's "magic box").
So E_y[∇θ mean(loss)] is exactly what each name says; q is always treated as frozen.
Ref: Amini, Vieira, Cotterell (2025) §4; Tang & Munos (2025) for the causal form.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmkl.kl.token_stats import TokenStats, token_stats
from lmkl.kl.validation import check_logits_pair

SURROGATE_FORMS: dict[str, str] = {
    "mc_seq": "score function: stopgrad(U)·Σ_t ∇log p(y_t) — unbiased",
    "mc_causal": "Σ_t ∇log p(y_t)·stopgrad(Σ_{j≥t} u_j) — unbiased, lower variance",
    "rb_paper": "Σ_t ∇KL_t + stopgrad(Σ_t KL_t)·Σ_t ∇log p(y_t) — unbiased, the authors' code",
    "rb_causal": "Σ_t ∇KL_t + Σ_t ∇log p(y_t)·stopgrad(Σ_{j>t} KL_j) — unbiased, lowest variance",
    "k3_loss": "Σ_t ∇[u_t + e^{−u_t} − 1] (GRPO-style) — BIASED for ∇KL",
}
UNBIASED_FORMS: frozenset[str] = frozenset(SURROGATE_FORMS) - {"k3_loss"}


def _score(x: torch.Tensor) -> torch.Tensor:
    """Zero in value, ∇x in gradient."""
    return x - x.detach()


def reverse_cumsum(x: torch.Tensor) -> torch.Tensor:
    """Σ_{j≥t} x_j along the last dimension ("reward to go")."""
    return x.flip(-1).cumsum(-1).flip(-1)


def _log_ratio(stats: TokenStats) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp [B, T] with p_θ's graph, u [B, T] = logp − stopgrad(logq), zero where masked)."""
    zero = torch.zeros((), dtype=stats.logp.dtype, device=stats.logp.device)
    return stats.logp, torch.where(stats.mask, stats.logp - stats.logq.detach(), zero)


def mc_seq(stats: TokenStats) -> torch.Tensor:
    """Score-function surrogate: terms u_t + stopgrad(U)·∇log p_θ(y_t), U = Σ_t u_t (value: mc).

    Unbiased for ∇θ KL(p_θ‖q) (E[U ∇log p_θ(y)] = ∇KL); the noisiest form: every token's score is
    weighted by the whole sequence's log-ratio.
    Args: stats: TokenStats [B, T], logp carrying p_θ's graph. Returns: [B, T] per-position terms.
    Ref: Amini, Vieira, Cotterell (2025) §4 (∇δ_MC)."""
    logp, u = _log_ratio(stats)
    U = u.sum(-1, keepdim=True).detach()  # [B, 1]
    return u.detach() + U * _score(logp)


def mc_causal(stats: TokenStats) -> torch.Tensor:
    """Causal score-function surrogate: terms u_t + ∇log p_θ(y_t)·stopgrad(Σ_{j≥t} u_j) (value: mc).

    Unbiased for ∇θ KL(p_θ‖q) (a token's score is independent of the log-ratios before it), with
    lower variance than mc_seq.
    Args: stats: TokenStats [B, T], logp carrying p_θ's graph. Returns: [B, T] per-position terms.
    Ref: Tang & Munos (2025); Amini, Vieira, Cotterell (2025) §4."""
    logp, u = _log_ratio(stats)
    to_go = reverse_cumsum(u).detach()  # Σ_{j≥t} u_j
    return u.detach() + _score(logp) * to_go


def rb_paper(stats: TokenStats) -> torch.Tensor:
    """Rao–Blackwellized surrogate as the authors' code differentiates it: terms
    KL_t(θ) + stopgrad(Σ_j KL_j)·∇log p_θ(y_t) (value: rb).

    Unbiased for ∇θ KL(p_θ‖q).
    Args: stats: TokenStats [B, T], logp and kl carrying p_θ's graph. Returns: [B, T] per-position terms.
    Ref: Amini, Vieira, Cotterell (2025) §4 (∇δ_RB), their released code."""
    logp, kl = stats.logp, stats.kl
    return kl + kl.sum(-1, keepdim=True).detach() * _score(logp)


def rb_causal(stats: TokenStats) -> torch.Tensor:
    """Causal Rao–Blackwellized surrogate: terms KL_t(θ) + ∇log p_θ(y_t)·stopgrad(Σ_{j>t} KL_j) (value: rb).

    Unbiased for ∇θ KL(p_θ‖q), with the lowest variance of the forms here (a token's score only
    multiplies the KL still to come).
    Args: stats: TokenStats [B, T], logp and kl carrying p_θ's graph. Returns: [B, T] per-position terms.
    Ref: Amini, Vieira, Cotterell (2025) §4; Tang & Munos (2025) for the causal form."""
    logp, kl = stats.logp, stats.kl
    future = (reverse_cumsum(kl) - kl).detach()  # Σ_{j>t} KL_j
    return kl + _score(logp) * future


def k3_loss(stats: TokenStats) -> torch.Tensor:
    """GRPO-style loss: terms k3_t(θ) = u_t + e^{−u_t} − 1 differentiated directly (value: k3_token).

    BIASED for ∇θ KL(p_θ‖q): its expected gradient is not ∇KL; here so that the bias can be shown.
    Args: stats: TokenStats [B, T], logp carrying p_θ's graph. Returns: [B, T] per-position terms.
    Ref: Shao et al. (2024) (GRPO); Amini, Vieira, Cotterell (2025) §4."""
    _, u = _log_ratio(stats)
    zero = torch.zeros((), dtype=u.dtype, device=u.device)
    return torch.where(stats.mask, u + torch.expm1(-u), zero)


# form name -> per-position terms [B, T] of its surrogate (SURROGATE_FORMS describes each)
SURROGATES: dict[str, Callable[[TokenStats], torch.Tensor]] = {
    "mc_seq": mc_seq,
    "mc_causal": mc_causal,
    "rb_paper": rb_paper,
    "rb_causal": rb_causal,
    "k3_loss": k3_loss,
}


def surrogate_terms(stats: TokenStats, form: str) -> torch.Tensor:
    """Per-position terms [B, T] of the surrogate of `form` (`SURROGATES[form]`), zero where masked;
    their sum over t is `surrogate_from_stats(stats, form)`. stats: logp and kl carry p_θ's graph
    (logq is frozen). Weighting term t by a constant w_t weights its gradient, which is how an
    off-policy correction enters.
    """
    if form not in SURROGATES:
        raise ValueError(f"form: expected one of {sorted(SURROGATES)}, got {form!r}")
    return SURROGATES[form](stats)


def surrogate_from_stats(stats: TokenStats, form: str, *, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The surrogate of `form` [B] from TokenStats whose logp and kl carry p_θ's graph (logq frozen).

    weights: optional importance weights π_θ/π_old of the samples, per position [B, T] or per
      sequence [B], treated as constants (detached): term t of the surrogate (`surrogate_terms`) is
      multiplied by its weight, so the gradient is the importance-weighted one when the samples come
      from an older policy (PPO epochs after the first). A per-sequence weight p_θ(y)/p_old(y) keeps
      E[∇] exact; per-position weights are the usual token-level (PPO-style) approximation. None: 1.
    """
    terms = surrogate_terms(stats, form)  # [B, T]
    if weights is not None:
        B, T = terms.shape  # batch, positions
        if weights.shape not in ((B,), (B, 1), (B, T)):
            raise ValueError(f"weights: expected shape [B] = [{B}] or [B, T] = [{B}, {T}], got {tuple(weights.shape)}")
        w = weights.detach().to(terms.dtype)
        terms = terms * (w.unsqueeze(-1) if w.dim() == 1 else w)
    return terms.sum(-1)


def kl_surrogate(
    logits_p: torch.Tensor,
    logits_q: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    form: str = "rb_causal",
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Per-sequence surrogate losses [B] whose expected gradient is ∇θ KL(p_θ‖q) (see SURROGATE_FORMS).

    Args: logits_p [B, T, V] with p_θ's graph (the sampling model), logits_q [B, T, V] (detached
    here), tokens [B, T] sampled from p_θ, mask [B, T] bool; form: a key of SURROGATE_FORMS.
    Returns: [B]; differentiate `loss.mean()` (or any fixed weighting) to get the gradient estimate.
    """
    if form not in SURROGATE_FORMS:
        raise ValueError(f"form: expected one of {sorted(SURROGATE_FORMS)}, got {form!r}")
    check_logits_pair(logits_p, logits_q)  # before .detach(): a non-tensor must get the ValueError
    stats = token_stats(logits_p, logits_q.detach(), tokens, mask, backend=backend)
    return surrogate_from_stats(stats, form)
