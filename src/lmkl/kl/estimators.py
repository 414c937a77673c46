"""Per-sequence KL value estimators. Each maps TokenStats [B, T] to per-sequence values [B].

The estimate of KL(p‖q) is the mean of these values (`lmkl.kl.summarize`); no estimator reduces
over the batch, except that the cross-fitted ones (cv_opt, rb_cv) fit a coefficient on the other
samples. Notation: u_t = log p(y_t|·) − log q(y_t|·), U = Σ_t u_t, C = Σ_t KL_t.
Ref: Amini, Vieira, Cotterell (2025); Schulman (2020) for k1/k2/k3.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmkl.kl.crossfit import BOUNDS, crossfit_coefficients
from lmkl.kl.token_stats import TokenStats


def sequence_log_ratio(stats: TokenStats) -> torch.Tensor:
    """U = Σ_t (logp − logq) = log p(y)/q(y), [B]."""
    return stats.log_ratio.sum(dim=-1)


def mc(stats: TokenStats) -> torch.Tensor:
    """Monte Carlo (k1): U = Σ_t (logp − logq). Unbiased; often negative."""
    return sequence_log_ratio(stats)


def k2(stats: TokenStats) -> torch.Tensor:
    """½ U². Biased (it matches KL only to second order); ≥ 0; for comparison only."""
    return 0.5 * sequence_log_ratio(stats).square()


def k3(stats: TokenStats) -> torch.Tensor:
    """Sequence-level control variate with α = 1: U + (e^{−U} − 1). Unbiased when supp q ⊆ supp p;
    ≥ 0; its variance is χ²(q‖p)-sized and can explode for long sequences."""
    U = sequence_log_ratio(stats).double()
    return (U + torch.expm1(-U)).to(stats.logp.dtype)


def k3_token(stats: TokenStats) -> torch.Tensor:
    """Σ_t [u_t + e^{−u_t} − 1]. Unbiased (per-step support inclusion); every term ≥ 0."""
    u = stats.log_ratio
    terms = torch.where(stats.mask, u + torch.expm1(-u), torch.zeros_like(u))
    return terms.sum(dim=-1)


def rb(stats: TokenStats) -> torch.Tensor:
    """Rao–Blackwellized estimate of KL(p‖q): Σ_t KL(p(·|y<t) ‖ q(·|y<t)).

    Unbiased for the sequence-level KL; every value ≥ 0. Ref: Amini, Vieira, Cotterell (2025), δ_RB.
    """
    return stats.kl.sum(dim=-1)


def control_variate_pair(stats: TokenStats, estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z), each [B] float64, of a control-variate estimator x + c·z with E[z] = 0:
    cv_opt: (U, e^{−U} − 1) (zero mean when supp q ⊆ supp p); rb_cv: (C, U − C) (a martingale)."""
    U = sequence_log_ratio(stats).double()
    if estimator == "cv_opt":
        return U, torch.expm1(-U)  # r − 1 with r = q(y)/p(y)
    if estimator == "rb_cv":
        C = rb(stats).double()
        return C, U - C
    raise ValueError(f"estimator: expected cv_opt or rb_cv, got {estimator!r}")


def _crossfitted(stats: TokenStats, estimator: str, folds: int | None, groups: torch.Tensor | None) -> torch.Tensor:
    x, z = control_variate_pair(stats, estimator)
    c = crossfit_coefficients(x, z, folds, groups=groups, bounds=BOUNDS[estimator])
    # c = 0 is the base estimator exactly, also where z is not finite (q = 0: U = C = +inf).
    return torch.where(c == 0, x, x + c * z).to(stats.logp.dtype)


def cv_opt(stats: TokenStats, folds: int | None = None, groups: torch.Tensor | None = None) -> torch.Tensor:
    """U + α (e^{−U} − 1) with the variance-optimal α = −Cov(U, r)/Var(r) ≥ 0, r = q(y)/p(y),
    cross-fitted (`lmkl.kl.crossfit`: other folds or other groups only, shrunk, α ∈ [0, 2]) so that
    the mean stays unbiased; mc until MIN_FIT_SAMPLES samples are outside a fold. Not sign-constrained."""
    return _crossfitted(stats, "cv_opt", folds, groups)


def rb_cv(stats: TokenStats, folds: int | None = None, groups: torch.Tensor | None = None) -> torch.Tensor:
    """C + λ (U − C), with λ = −Cov(C, U − C)/Var(U − C) cross-fitted (`lmkl.kl.crossfit`).

    U − C = Σ_t (u_t − KL_t) is a sum of martingale differences (mean exactly 0), so this is
    unbiased for any λ fitted without the sample; λ = 0 is rb, λ = 1 is mc. rb until MIN_FIT_SAMPLES
    samples are outside a fold (pass groups= to fit across prompts), then the fitted λ shrunk by its
    sampling variance, in [−1, 2]: not worse than rb at small M, near the better mix at large M — the
    point, since Var(rb) ≤ Var(mc) fails for summed sequences.
    """
    return _crossfitted(stats, "rb_cv", folds, groups)


EstimatorFn = Callable[..., torch.Tensor]

# name -> (function, unbiased for KL(p‖q))
ESTIMATORS: dict[str, EstimatorFn] = {
    "mc": mc,
    "k2": k2,
    "k3": k3,
    "k3_token": k3_token,
    "cv_opt": cv_opt,
    "rb": rb,
    "rb_cv": rb_cv,
}
UNBIASED: frozenset[str] = frozenset(ESTIMATORS) - {"k2"}
CROSSFITTED: frozenset[str] = frozenset({"cv_opt", "rb_cv"})


ESTIMATE_OPTIONS = ("folds", "groups")  # the cross-fitted estimators' options; the others ignore them


def estimate(stats: TokenStats, estimator: str, **options) -> torch.Tensor:
    """Per-sequence values [B] of one estimator (see `ESTIMATORS`); their mean is the estimate.

    options: `folds` and `groups`, which only matter for the cross-fitted estimators: groups [B] (e.g.
    the prompt index of each sequence) fits each group's coefficient on the other groups (exactly
    unbiased; the per-group means stay unbiased for each group's KL); folds = K folds instead of
    leave-one-out. Any other keyword is a TypeError naming it and the allowed ones.
    """
    unknown = sorted(set(options) - set(ESTIMATE_OPTIONS))
    if unknown:
        raise TypeError(f"estimate: unexpected keyword {unknown[0]!r}; allowed: {', '.join(ESTIMATE_OPTIONS)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {sorted(ESTIMATORS)}, got {estimator!r}")
    if not isinstance(stats, TokenStats):
        raise ValueError(f"stats: expected a TokenStats (from lmkl.kl.token_stats), got {type(stats).__name__}")
    if estimator in CROSSFITTED:
        return ESTIMATORS[estimator](stats, **options)
    return ESTIMATORS[estimator](stats)
