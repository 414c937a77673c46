"""Surrogate losses whose gradient estimates ∇θ KL(p_θ‖q) from samples y ~ p_θ.

Every form returns [B] per-sequence losses. Their forward value is the matching value estimate
(mc for mc_*, rb for rb_*, k3_token for k3_loss); the score-function parts enter through
`_score(x) = x − stopgrad(x)`, which is 0 in value and ∇x in gradient (DiCE's "magic box").
So E_y[∇θ mean(loss)] is exactly what each name says; q is always treated as frozen.
Ref: Amini, Vieira, Cotterell (2025) §4; Tang & Munos (2025) for the causal form.
"""

from __future__ import annotations

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


def surrogate_terms(stats: TokenStats, form: str) -> torch.Tensor:
    """Per-position terms [B, T] of the surrogate of `form`, zero where masked; their sum over t is
    `surrogate_from_stats(stats, form)`. stats: logp and kl carry p_θ's graph (logq is frozen).

    Term t holds what position t contributes: for rb_causal KL_t(θ) + ∇log p(y_t)·stopgrad(Σ_{j>t} KL_j),
    for mc_causal ∇log p(y_t)·stopgrad(Σ_{j≥t} u_j) (plus u_t in value), for the sequence-level
    score forms stopgrad(U or Σ KL)·∇log p(y_t), for k3_loss the token's k3. Weighting term t by a
    constant w_t weights its gradient, which is how an off-policy correction enters.
    """
    if form not in SURROGATE_FORMS:
        raise ValueError(f"form: expected one of {sorted(SURROGATE_FORMS)}, got {form!r}")
    m = stats.mask
    zero = torch.zeros((), dtype=stats.logp.dtype, device=stats.logp.device)
    logp, logq = stats.logp, stats.logq.detach()
    u = torch.where(m, logp - logq, zero)  # [B, T]
    if form == "mc_seq":
        U = u.sum(-1, keepdim=True).detach()  # [B, 1]
        return u.detach() + U * _score(logp)
    if form == "mc_causal":
        to_go = reverse_cumsum(u).detach()  # Σ_{j≥t} u_j
        return u.detach() + _score(logp) * to_go
    kl = stats.kl
    if form == "rb_paper":
        return kl + kl.sum(-1, keepdim=True).detach() * _score(logp)
    if form == "rb_causal":
        future = (reverse_cumsum(kl) - kl).detach()  # Σ_{j>t} KL_j
        return kl + _score(logp) * future
    # k3_loss: per-token k3 differentiated as a loss (biased: its gradient is not ∇KL).
    return torch.where(m, u + torch.expm1(-u), zero)


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
