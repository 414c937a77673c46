"""The bootstrap intervals of the claims report against known sampling distributions."""

from __future__ import annotations

import numpy as np

from lmkl.studies.claims_bootstrap import (
    paired_seed_mean,
    percentile_interval,
    rep_bootstrap,
    seed_bootstrap,
    unit_bootstrap,
)

Z95 = 1.959963984540054


def test_unit_bootstrap_width_matches_the_standard_error():
    # x [U, R] i.i.d. N(0, 1): the mean over everything has se 1/√(U·R). Resampling units with all their
    # repetitions must give a 95 % interval of width ≈ 2·1.96·se. Tolerance 15 %: the bootstrap's se has a
    # relative error ≈ 1/√(2U) = 3.5 % (U = 400) and the percentile quantiles of 2000 draws ≈ 3 %, so 15 %
    # is over 3 standard deviations. A two-stage bootstrap (also resampling repetitions) would be √2 too wide.
    rng = np.random.default_rng(1)
    U, R = 400, 8
    x = rng.standard_normal((U, R))
    value, lo, hi = unit_bootstrap(x, lambda a: float(a.mean()), 2000, np.random.default_rng(2))
    width = hi - lo
    assert abs(width / (2 * Z95 / np.sqrt(U * R)) - 1) < 0.15
    assert lo < value < hi


def test_rep_bootstrap_is_paired_across_rows():
    # Two rows with the same repetition noise: their difference is exact, so its interval has zero width.
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(32)
    x = np.stack([noise + 1.0, noise])  # [2, R]
    value, lo, hi = rep_bootstrap(x, lambda a: float(a[0].mean() - a[1].mean()), 500, rng)
    assert np.allclose([value, lo, hi], 1.0)
    # the mean of one row does vary
    _, lo1, hi1 = rep_bootstrap(x, lambda a: float(a[1].mean()), 500, rng)
    assert hi1 - lo1 > 0.2


def test_seed_bootstrap_needs_three_seeds():
    # two seeds give 3 distinct resamples: their range is no 95 % interval, so no verdict (MIN_SEEDS)
    rng = np.random.default_rng(0)
    v, lo, hi = paired_seed_mean(np.array([[1.0, 3.0], [2.0, 4.0]]), 100, rng)
    assert v == 2.5 and np.isnan(lo) and np.isnan(hi)
    v, lo, hi = seed_bootstrap(1, lambda idx: 0.7, 100, rng)
    assert v == 0.7 and np.isnan(lo)
    v, lo, hi = seed_bootstrap(2, lambda idx: float(idx.mean()), 100, rng)
    assert v == 0.5 and np.isnan(lo) and np.isnan(hi)
    v, lo, hi = seed_bootstrap(3, lambda idx: float(idx.mean()), 500, rng)
    assert v == 1.0 and 0.0 <= lo < 1.0 < hi <= 2.0


def test_paired_seed_mean_resamples_columns():
    # d[β, seed]: per-seed means 1, 2, 3 — every resample's mean lies in [1, 3], and all three appear.
    d = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    v, lo, hi = paired_seed_mean(d, 2000, np.random.default_rng(0))
    assert v == 2.0
    assert 1.0 <= lo < 2.0 < hi <= 3.0


def test_percentile_interval_nan_handling():
    assert np.isnan(percentile_interval(np.array([np.nan] * 10 + [1.0]))[0])
    lo, hi = percentile_interval(np.r_[np.arange(1000.0), np.nan])  # one NaN in 1001 is ignored
    assert 20 < lo < 30 and 970 < hi < 980
