"""Exact values by enumeration: KL, its gradient, and the moments of any estimator or surrogate.

Everything here is a finite sum over the support of a `TabularLM` (or a linear solve for an
`NGramLM`), in float64, with no sampling: a test that compares an estimator's exact mean with the
exact KL has no statistical tolerance, only rounding.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch

from lmkl.exact.ngram import NGramLM, ngram_kl
from lmkl.exact.tabular import TabularLM
from lmkl.kl import CROSSFITTED, ESTIMATORS, TokenStats, estimate, surrogate_from_stats, token_stats

ExactLM = TabularLM | NGramLM


class Support(NamedTuple):
    """The strings with p(y) > 0: tokens, mask [S, T]; log_p [S] (with p's graph); weights [S] = p(y), detached."""

    tokens: torch.Tensor
    mask: torch.Tensor
    log_p: torch.Tensor
    weights: torch.Tensor


class Moments(NamedTuple):
    """Exact mean and variance of a statistic under p (float)."""

    mean: float
    var: float


def support(p: TabularLM) -> Support:
    """Enumerate every string y with p(y) > 0 (strings of probability 0 would only add 0·(−∞) terms)."""
    if not isinstance(p, TabularLM):
        raise ValueError(
            f"p: expected a TabularLM (a finite support to enumerate), got {type(p).__name__}; "
            "an NGramLM has unbounded length: use exact_kl / exact_kl_grad"
        )
    tokens, mask = p.all_strings()
    log_p = p.log_prob(tokens, mask)
    keep = log_p.detach() > float("-inf")
    return Support(tokens[keep], mask[keep], log_p[keep], log_p.detach()[keep].exp())


def _check_pair(p: ExactLM, q: ExactLM) -> None:
    if type(p) is not type(q):
        raise ValueError(f"q: expected a {type(p).__name__} like p, got {type(q).__name__}")
    if isinstance(p, TabularLM) and (p.vocab_size, p.eos, p.max_len) != (q.vocab_size, q.eos, q.max_len):
        raise ValueError(
            f"q: expected p's structure (vocab {p.vocab_size}, eos {p.eos}, max_len {p.max_len}), "
            f"got (vocab {q.vocab_size}, eos {q.eos}, max_len {q.max_len})"
        )


def exact_kl(p: ExactLM, q: ExactLM) -> torch.Tensor:
    """KL(p‖q) as a float64 scalar, differentiable w.r.t. both models' logits.

    TabularLM: Σ_y p(y) log p(y)/q(y) over the support of p (+inf if q(y) = 0 < p(y)).
    NGramLM: Σ_s v_s D(s) from the linear system (`lmkl.exact.ngram`).
    """
    _check_pair(p, q)
    if isinstance(p, NGramLM):
        return ngram_kl(p, q)
    sup = support(p)
    log_q = q.log_prob(sup.tokens, sup.mask)
    return (sup.log_p.exp() * (sup.log_p - log_q)).sum()


def exact_kl_grad(p: ExactLM, q: ExactLM) -> torch.Tensor:
    """∇ KL(p‖q) with respect to p's logits, same shape as p.logits, by autograd through `exact_kl`."""
    theta = p.logits.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(exact_kl(p.with_logits(theta), q), theta)
    return grad


def support_stats(p: TabularLM, q: TabularLM) -> tuple[Support, TokenStats]:
    """TokenStats of every string in p's support (through `lmkl.kl.token_stats`, the code under test)."""
    _check_pair(p, q)
    sup = support(p)
    stats = token_stats(p.next_token_logits(sup.tokens), q.next_token_logits(sup.tokens), sup.tokens, sup.mask)
    return sup, stats


def moments(weights: torch.Tensor, values: torch.Tensor) -> Moments:
    """Mean Σ w·x and variance Σ w·(x − mean)² of values [S] under probabilities weights [S]."""
    w, x = weights.double(), values.detach().double()
    mean = (w * x).sum()
    return Moments(float(mean), float((w * (x - mean).square()).sum()))


def estimator_moments(p: TabularLM, q: TabularLM, estimator: str) -> Moments:
    """Exact mean and per-sample variance of `estimate(stats, estimator)` for one y ~ p.

    Only for the per-sequence estimators; the cross-fitted ones depend on the whole batch
    (see `crossfit_moments`).
    """
    if estimator in CROSSFITTED or estimator not in ESTIMATORS:
        raise ValueError(
            f"estimator: expected a per-sequence estimator in {sorted(set(ESTIMATORS) - CROSSFITTED)}, "
            f"got {estimator!r}"
        )
    sup, stats = support_stats(p, q)
    return moments(sup.weights, estimate(stats, estimator))


def oracle_control_variate(weights: torch.Tensor, x: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """For a zero-mean control variate z: c* = −Cov(x, z)/Var(z) and Var(x + c* z), exactly.

    The variance no cross-fitted estimator can beat per sample (it is what cv_opt and rb_cv
    approach as the batch grows).
    """
    w = weights.double()
    x, z = x.detach().double(), z.detach().double()
    xc, zc = x - (w * x).sum(), z - (w * z).sum()
    var_z = (w * zc.square()).sum()
    c = -(w * xc * zc).sum() / var_z
    return float(c), float((w * (xc + c * zc).square()).sum())


def crossfit_moments(
    p: TabularLM, q: TabularLM, estimator: str, M: int, *, folds: int | None = None, ordered: bool = True
) -> Moments:
    """Exact mean and variance of the M-sample estimate mean(estimate(stats of y_1..y_M, estimator)).

    ordered=True sums over all S^M ordered tuples with weight Π p(y_i). ordered=False sums over the
    multisets with multinomial weights instead (C(S+M−1, M) terms): valid only when the estimate does
    not depend on the order of the samples, which holds for leave-one-out cross-fitting (folds=None)
    and for every per-sequence estimator.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {sorted(ESTIMATORS)}, got {estimator!r}")
    if M < 1:
        raise ValueError(f"M: expected ≥ 1 samples per estimate, got {M}")
    if not ordered and folds is not None:
        raise ValueError("ordered: False needs leave-one-out cross-fitting (folds=None); K folds depend on order")
    sup, stats = support_stats(p, q)
    S = sup.weights.numel()
    log_w = sup.weights.log()
    tuples = itertools.product(range(S), repeat=M) if ordered else itertools.combinations_with_replacement(range(S), M)
    means, log_weights = [], []
    for idx in tuples:
        i = torch.tensor(idx)
        sub = TokenStats(*(f[i] for f in stats))
        means.append(estimate(sub, estimator, folds=folds).double().mean())
        lw = log_w[i].sum()
        if not ordered:  # number of orderings of this multiset: M! / Π (multiplicity)!
            counts = torch.bincount(i, minlength=S)
            lw = lw + math.lgamma(M + 1) - torch.lgamma(counts.double() + 1).sum()
        log_weights.append(lw)
    return moments(torch.stack(log_weights).exp(), torch.stack(means))


def expected_surrogate_grad(p: TabularLM, q: TabularLM, form: str) -> torch.Tensor:
    """Σ_y p(y) ∇_θ loss(y) for a `lmkl.kl` surrogate form, with the weights p(y) held fixed.

    This is the expectation of the gradient estimate from one sample (what E[∇ mean(loss)] is), to
    be compared with `exact_kl_grad`. Same shape as p.logits.
    """
    theta = p.logits.detach().clone().requires_grad_(True)
    p_theta = p.with_logits(theta)
    sup, stats = support_stats(p_theta, q)
    loss = surrogate_from_stats(stats, form)  # [S]
    (grad,) = torch.autograd.grad((sup.weights * loss).sum(), theta)
    return grad
