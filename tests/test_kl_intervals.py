"""Intervals of `summarize` / `summarize_estimator`: the skewness-corrected interval, the jackknife
standard error of cross-fitted values, and issue 11's coverage target on lmkl.exact random toys."""

from __future__ import annotations

import math

import pytest
import torch

from lmkl.exact import exact_kl, random_tabular_pair, support_stats
from lmkl.kl import TokenStats, estimate, summarize, summarize_estimator
from lmkl.kl.crossfit import BOUNDS, crossfit_coefficients, jackknife_means
from lmkl.kl.estimators import control_variate_pair
from lmkl.kl.summary import skew_interval, skewness


def test_estimate_says_which_interval_and_normal_is_the_default():
    x = torch.tensor([0.1, 0.2, 0.1, 3.0, 0.2, 0.1, 0.3, 0.2])
    assert summarize(x).interval == "normal"
    s = summarize(x, interval="skew")
    assert s.interval == "skew" and s.as_dict()["interval"] == "skew"
    # Right-skewed values: the interval reaches further above the mean than below it.
    assert s.ci_high - s.mean > s.mean - s.ci_low
    b = summarize(x, interval="bootstrap", seed=3)
    assert b.interval == "bootstrap" and b.ci_low < b.mean < b.ci_high
    assert summarize(x, interval="bootstrap", seed=3) == b  # seeded
    with pytest.raises(ValueError, match="interval"):
        summarize(x, interval="t")


def test_skew_interval_is_the_normal_one_without_skew_and_inverts_halls_map():
    lo, hi = skew_interval(1.0, 0.5, 0.0, 50)
    assert (float(lo), float(hi)) == pytest.approx((1.0 - 1.959964 * 0.5, 1.0 + 1.959964 * 0.5))
    # g(T) = T + (a/3)T² + (a²/27)T³ + a/6 at the endpoints' T = (x̄ − μ)/se gives ∓1.96.
    skew, n, mean, se = 2.5, 40, 1.0, 0.3
    a = skew / math.sqrt(n)
    lo, hi = skew_interval(mean, se, skew, n)
    for end, z in ((hi, -1.959964), (lo, 1.959964)):
        T = (mean - float(end)) / se
        assert T + a / 3 * T**2 + a**2 / 27 * T**3 + a / 6 == pytest.approx(z, abs=1e-5)


def test_jackknife_stderr_is_the_usual_one_when_nothing_is_fitted_and_refits_otherwise():
    p, q = random_tabular_pair(1)
    sup, stats = support_stats(p, q)
    g = torch.Generator().manual_seed(0)
    few = TokenStats(*(f[torch.multinomial(sup.weights, 20, replacement=True, generator=g)] for f in stats))
    assert summarize_estimator(few, "rb_cv").stderr == pytest.approx(summarize(estimate(few, "rb")).stderr, rel=1e-12)
    many = TokenStats(*(f[torch.multinomial(sup.weights, 48, replacement=True, generator=g)] for f in stats))
    x, z = control_variate_pair(many, "rb_cv")
    reps = []
    for d in range(48):  # brute force: drop sample d, refit every leave-one-out coefficient
        keep = torch.arange(48) != d
        c = crossfit_coefficients(x[keep], z[keep], bounds=BOUNDS["rb_cv"])
        reps.append(float((x[keep] + c * z[keep]).mean()))
    reps = torch.tensor(reps, dtype=torch.float64)
    want = math.sqrt(47 / 48 * float((reps - reps.mean()).square().sum()))
    assert summarize_estimator(many, "rb_cv").stderr == pytest.approx(want, rel=1e-10)
    assert summarize_estimator(many, "rb_cv").stderr != pytest.approx(summarize(estimate(many, "rb_cv")).stderr, rel=1e-3)
    with pytest.raises(ValueError, match="bootstrap"):
        summarize_estimator(many, "rb_cv", interval="bootstrap")
    assert summarize_estimator(many, "rb", interval="skew") == summarize(estimate(many, "rb"), interval="skew")


def _coverage(seed: int, estimator: str, M: int, batches: int) -> float:
    """Share of `batches` simulated M-sample batches whose skew interval covers the exact KL
    (vectorised over batches; the first batch is checked against `summarize_estimator`)."""
    p, q = random_tabular_pair(seed)
    kl = float(exact_kl(p, q))
    sup, stats = support_stats(p, q)
    idx = torch.multinomial(sup.weights, batches * M, replacement=True, generator=torch.Generator().manual_seed(seed))
    idx = idx.reshape(batches, M)
    if estimator == "rb_cv":
        x, z = control_variate_pair(stats, "rb_cv")
        X, Z = x[idx], z[idx]
        values = X + crossfit_coefficients(X, Z, bounds=BOUNDS["rb_cv"]) * Z  # [batches, M]
        reps, _ = jackknife_means(X, Z, bounds=BOUNDS["rb_cv"])  # [batches, M]
        se = ((M - 1) / M * (reps - reps.mean(-1, keepdim=True)).square().sum(-1)).sqrt()
    else:
        values = estimate(stats, estimator).double()[idx]
        se = values.std(-1, correction=1) / math.sqrt(M)
    mean = values.mean(-1)
    lo, hi = skew_interval(mean, se, skewness(values), M)
    one = summarize_estimator(TokenStats(*(f[idx[0]] for f in stats)), estimator, interval="skew")
    assert (one.ci_low, one.ci_high) == pytest.approx((float(lo[0]), float(hi[0])), rel=1e-9)
    return float(((lo <= kl) & (kl <= hi)).double().mean())


@pytest.mark.parametrize("estimator", ["mc", "rb", "rb_cv"])
def test_skew_interval_covers_the_exact_kl_at_M_64(estimator):
    """Issue 11: ≥ 93 % coverage over simulated batches of M = 64 on the random toys: 2,000 batches on
    each of toys 0, 1, 2 (6,000 in all). Measured over 20,000 batches per toy: mc 93.8 / 93.4 / 97.2 %,
    rb 97.1 / 95.8 / 96.8 % (rb_cv: benchmarks/interval_coverage.py, 94–97 %), so the pooled true
    coverage is ≥ 94.5 % and its binomial sd over 6,000 batches 0.3 %: 93 % is 5 sd below. (One toy
    alone, mc on toy 1 at 93.4 %, would sit within 1 sd of 93 % with 2,000 batches.)"""
    cover = [_coverage(seed, estimator, 64, 2000) for seed in (0, 1, 2)]
    assert sum(cover) / 3 >= 0.93, cover
