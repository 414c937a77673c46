"""Variance claims, exactly: Var(rb) ≤ Var(mc) fails on the counterexample, and rb_cv repairs it.

The counterexample (paper-digest §3.2, Appendix A.2): exact values KL 2.3954, Var mc 3.316,
Var rb 5.070, Var seq-k3 100.9, Var CV(α*) 2.997, Var rb + λ*(mc − rb) 2.945. The digest prints 4
significant digits, so the comparisons use abs=5e-4 (half a unit in the last printed place, 0.1 for
100.9); our values are exact sums over the 4 strings.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmkl.exact import crossfit_moments, estimator_moments, exact_kl, oracle_control_variate, support_stats
from lmkl.kl import estimate


def test_counterexample_exact_numbers(counterexample_pair):
    p, q = counterexample_pair
    assert float(exact_kl(p, q)) == pytest.approx(2.3954, abs=5e-5)
    assert estimator_moments(p, q, "mc").var == pytest.approx(3.316, abs=5e-4)
    assert estimator_moments(p, q, "rb").var == pytest.approx(5.070, abs=5e-4)
    assert estimator_moments(p, q, "k3").var == pytest.approx(100.9, abs=0.05)
    sup, stats = support_stats(p, q)
    U, C = estimate(stats, "mc"), estimate(stats, "rb")
    assert oracle_control_variate(sup.weights, U, torch.expm1(-U))[1] == pytest.approx(2.997, abs=5e-4)
    assert oracle_control_variate(sup.weights, C, U - C)[1] == pytest.approx(2.945, abs=5e-4)


def test_rb_loses_to_mc_on_the_counterexample(counterexample_pair):
    p, q = counterexample_pair
    assert estimator_moments(p, q, "rb").var > 1.5 * estimator_moments(p, q, "mc").var


def test_rb_beats_mc_on_random_toys(toy_pair):
    """The usual case (digest A.1: 300/300 random toys, worst ratio 0.78)."""
    p, q = toy_pair
    assert estimator_moments(p, q, "rb").var < 0.78 * estimator_moments(p, q, "mc").var


def _loo_rb_cv_by_counts(w, x, z, M, width=7.0):
    """Exact (mass, mean, variance) of the M-sample leave-one-out rb_cv estimate, summed over count vectors.

    With S support strings the estimate depends on the sample only through the counts n (it is
    permutation invariant), n ~ Multinomial(M, w), so this is a sum over C(M+S−1, S−1) count vectors
    instead of S^M tuples; vectors beyond `width` binomial standard deviations in any of the first
    S − 1 coordinates are left out (their mass is returned so the caller can bound them). The
    coefficient arithmetic mirrors `lmkl.kl.crossfit` and is checked against it at small M below.
    x = C (rb values), z = U − C per string; w = p(string).
    """
    S, m = w.numel(), M - 1  # strings, samples outside the left-out one
    sd = (M * w * (1 - w)).sqrt()
    ranges = [
        torch.arange(max(0, math.floor(M * w[k] - width * sd[k])), min(M, math.ceil(M * w[k] + width * sd[k])) + 1)
        for k in range(S - 1)
    ]
    n = torch.cartesian_prod(*ranges).reshape(-1, S - 1)
    n = torch.cat([n, M - n.sum(1, keepdim=True)], 1)
    n = n[n[:, -1] >= 0].double()  # [N, S] count vectors
    pmf = (math.lgamma(M + 1) - torch.lgamma(n + 1).sum(1) + (n * w.log()).sum(1)).exp()
    sx, sz, sxz, szz = n @ x, n @ z, n @ (x * z), n @ (z * z)  # [N] sums over all M samples
    # Columns: the left-out sample is of type k ([N, S]); moments of the other M − 1.
    mx, mz = (sx[:, None] - x) / m, (sz[:, None] - z) / m
    cov = (sxz[:, None] - x * z) / m - mx * mz
    var = (szz[:, None] - z * z) / m - mz * mz
    c = -cov / var
    tiny = 64 * torch.finfo(torch.float64).eps * szz[:, None] / m
    c = torch.where((m >= 2) & torch.isfinite(c) & (var > tiny), c, torch.zeros_like(c)).clamp(-1.0, 2.0)
    T = (n * (x + c * z)).sum(1) / M  # the estimate for each count vector
    mean = (pmf * T).sum()
    return float(pmf.sum()), float(mean), float((pmf * (T - mean).square()).sum()), float((T - mean).abs().max())


@pytest.fixture
def counterexample_cv(counterexample_pair):
    p, q = counterexample_pair
    sup, stats = support_stats(p, q)
    U, C = estimate(stats, "mc"), estimate(stats, "rb")
    return p, q, sup.weights, C, U - C


@pytest.mark.parametrize("M", [5, 12])
def test_count_enumeration_matches_tuple_enumeration(counterexample_cv, M):
    p, q, w, x, z = counterexample_cv
    mass, mean, var, _ = _loo_rb_cv_by_counts(w, x, z, M, width=1e9)  # every count vector
    ref = crossfit_moments(p, q, "rb_cv", M, ordered=False)
    assert mass == pytest.approx(1.0, abs=1e-12)
    assert mean == pytest.approx(ref.mean, abs=1e-10)
    assert var == pytest.approx(ref.var, rel=1e-9)


def test_rb_cv_beats_mc_and_rb_at_large_M(counterexample_cv):
    """M · Var(rb_cv estimate) at M = 2000 is exactly below both Var(mc) and Var(rb).

    Convergence to the oracle 2.945 is slow here: the string "1 0" has p = 0.005 and the largest
    |U − C|, so λ is fitted well only once it has been seen many times. With λ clipped to [−1, 2]
    (lmkl.kl.crossfit) M · Var is 3.27 at M = 32, 3.09 at M = 500, 3.04 at M = 1000, 3.01 at
    M = 2000, 2.99 at M = 4000; unclipped it was 8.7, 4.10, 3.33, 3.09, 3.01.
    Truncation: the left-out count vectors have mass ε < 1e-8; to close the 0.2 gap to Var(mc) they
    would need |T − KL| > √(0.2 / (M ε)) ≈ 100, while over the enumerated vectors max |T − KL| < 5.
    """
    p, q, w, x, z = counterexample_cv
    M = 2000
    mass, mean, var, max_dev = _loo_rb_cv_by_counts(w, x, z, M)
    assert 1 - mass < 1e-8 and max_dev < 5
    assert mean == pytest.approx(float(exact_kl(p, q)), abs=1e-7)  # unbiased up to the left-out mass
    var_mc, var_rb = estimator_moments(p, q, "mc").var, estimator_moments(p, q, "rb").var
    assert M * var < var_mc - 0.2 and M * var < var_rb
    oracle = oracle_control_variate(w, x, z)[1]
    assert oracle <= M * var < oracle + 0.2
