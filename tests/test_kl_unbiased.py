"""Every unbiased estimator has expectation exactly KL(p‖q), by enumeration (no sampling noise).

Tolerances: the sums are over ≤ 3375 float64 terms of size O(1), so rounding is ~1e-13; 1e-10
leaves a margin of 1000× while a real bias (k2's is 0.01 to 2 here) is 1e8× larger.
"""

from __future__ import annotations

import pytest

from lmkl.exact import crossfit_moments, estimator_moments, exact_kl, random_tabular_pair
from lmkl.kl import CROSSFITTED, UNBIASED, crossfit

PER_SEQUENCE_UNBIASED = sorted(UNBIASED - CROSSFITTED)
TOL = 1e-10


@pytest.mark.parametrize("estimator", PER_SEQUENCE_UNBIASED)
def test_per_sequence_estimators_are_unbiased(toy_pair, estimator):
    p, q = toy_pair
    assert estimator_moments(p, q, estimator).mean == pytest.approx(float(exact_kl(p, q)), abs=TOL)


@pytest.mark.parametrize("estimator", PER_SEQUENCE_UNBIASED)
def test_unbiased_on_counterexample(counterexample_pair, estimator):
    p, q = counterexample_pair
    assert estimator_moments(p, q, estimator).mean == pytest.approx(2.3954, abs=5e-5)
    assert estimator_moments(p, q, estimator).mean == pytest.approx(float(exact_kl(p, q)), abs=TOL)


def test_k2_is_biased(toy_pair, counterexample_pair):
    for p, q in (toy_pair, counterexample_pair):
        kl = float(exact_kl(p, q))
        # ½E[U²] = ½(Var U + KL²) ≠ KL in general; here it overshoots by ≥ 10 % of KL.
        assert abs(estimator_moments(p, q, "k2").mean - kl) > 0.1 * kl


@pytest.fixture
def small_min_fit(monkeypatch):
    """Unbiasedness holds for any minimum number of fitting samples; lowered to 3 so that the fit is
    active in batches small enough to enumerate (the shipped 32 would make these the base estimators)."""
    monkeypatch.setattr(crossfit, "MIN_FIT_SAMPLES", 3)


@pytest.mark.parametrize("estimator", sorted(CROSSFITTED))
@pytest.mark.parametrize(("M", "folds"), [(4, None), (5, 2)])
def test_crossfitted_estimators_are_unbiased_over_all_ordered_tuples(small_min_fit, estimator, M, folds):
    p, q = random_tabular_pair(5, vocab_size=2, max_len=3, perturbation=1.0)  # 4 strings: 256 / 1024 tuples
    m = crossfit_moments(p, q, estimator, M, folds=folds)
    assert m.mean == pytest.approx(float(exact_kl(p, q)), abs=TOL)
    assert m.var * M != pytest.approx(estimator_moments(p, q, "rb" if estimator == "rb_cv" else "mc").var, rel=1e-6)


@pytest.mark.parametrize("estimator", sorted(CROSSFITTED))
def test_crossfitted_unbiased_on_counterexample_quadruples(small_min_fit, counterexample_pair, estimator):
    p, q = counterexample_pair  # 4 strings: 256 ordered quadruples
    assert crossfit_moments(p, q, estimator, 4).mean == pytest.approx(float(exact_kl(p, q)), abs=TOL)


def test_multiset_enumeration_matches_ordered_tuples(small_min_fit):
    """crossfit_moments(ordered=False), used for large M, is the same sum for leave-one-out."""
    p, q = random_tabular_pair(6, vocab_size=2, max_len=3, perturbation=1.0)  # 4 strings
    a = crossfit_moments(p, q, "rb_cv", 4, ordered=True)
    b = crossfit_moments(p, q, "rb_cv", 4, ordered=False)
    assert b.mean == pytest.approx(a.mean, abs=TOL)
    assert b.var == pytest.approx(a.var, rel=1e-9)
