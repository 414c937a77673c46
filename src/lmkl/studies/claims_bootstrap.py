"""Bootstrap intervals that resample what is independent in each study.

Training claims: the seed is the independent unit (runs of one seed at several β share their
random stream, so they are resampled together); runs pair by (β, seed), so a paired difference
d[β, seed] is computed first and the seeds of the matrix d are resampled (`seed_resamples`).
Estimation claims (variance study): the (policy, prompt) units are independent (each policy draws its
own samples), and within a unit the repetitions are independent sample blocks. The units are resampled
with all their repetitions (`unit_bootstrap`): the repetition noise already enters each unit's
statistic, and resampling the repetitions again inside each drawn unit would count it twice — the
two-stage bootstrap overstates the variance (Davison & Hinkley 1997, §3.8; by a factor 2 for a mean of
i.i.d. values). Where the repetitions are the only independent level (the gradient study: every
estimate pools all prompts) they are resampled (`rep_bootstrap`), jointly across forms.
Percentile intervals (`percentile_interval`). With few seeds the seed bootstrap is optimistic: S
seeds give only C(2S − 1, S) distinct resamples (10 for S = 3); two seeds give 3, whose percentile
"interval" is just the range of three values and no 95 % statement at all, so below MIN_SEEDS the
interval is NaN and the claim inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVEL = 0.95
MIN_SEEDS = 3  # the fewest seeds for which a seed bootstrap is given a verdict (module docstring)


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high): the central `level` percentile interval of bootstrap samples, NaNs ignored.

    NaN when more than 1 − level of the samples are NaN (the statistic is undefined too often to say).
    """
    s = np.asarray(samples, dtype=float).reshape(-1)
    ok = s[np.isfinite(s)]
    if s.size == 0 or ok.size < level * s.size:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(ok, [a, 1 - a])
    return float(lo), float(hi)


def seed_resamples(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_seeds] seed indices drawn with replacement; an empty array when n_seeds < MIN_SEEDS."""
    if n_seeds < MIN_SEEDS:
        return np.empty((0, n_seeds), dtype=int)
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def paired_seed_mean(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of d [B, S] (β × seed paired differences), seeds resampled.

    Cells that are NaN (a missing pair) are left out of each mean.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"d: expected a [betas, seeds] matrix, got shape {d.shape}")
    value = float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")
    idx = seed_resamples(d.shape[1], n_boot, rng)
    if idx.size == 0:
        return value, float("nan"), float("nan")
    boot = np.array([np.nanmean(d[:, i]) if np.isfinite(d[:, i]).any() else np.nan for i in idx])
    return (value, *percentile_interval(boot))


def seed_bootstrap(
    n_seeds: int, stat: Callable[[np.ndarray], float], n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(stat(all seeds), low, high) for a statistic of a multiset of seed indices (e.g. the front share
    of the runs of those seeds); NaN interval with fewer than MIN_SEEDS seeds."""
    value = float(stat(np.arange(n_seeds)))
    idx = seed_resamples(n_seeds, n_boot, rng)
    if idx.size == 0:
        return value, float("nan"), float("nan")
    return (value, *percentile_interval(np.array([stat(i) for i in idx])))


def unit_bootstrap(
    x: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(stat(x), low, high) for x [U, ...] whose first axis holds the independent units (policy × prompt),
    the units drawn with replacement; each unit keeps all its repetitions (module docstring).

    `stat` maps an array of x's shape to a number. The other axes (estimator, M, repetition) stay
    together: every estimator and M sees the same resampled units (they share the samples).
    """
    x = np.asarray(x, dtype=float)
    U = x.shape[0]
    value = float(stat(x))
    if U < 2:
        return value, float("nan"), float("nan")
    boot = [stat(x[rng.integers(0, U, size=U)]) for _ in range(n_boot)]
    return (value, *percentile_interval(np.array(boot)))


def rep_bootstrap(
    x: np.ndarray, stat: Callable[[np.ndarray], float], n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(stat(x), low, high) for x [..., R]: the repetitions (last axis) resampled, jointly for every
    leading index (paired: the forms of one repetition share its samples)."""
    x = np.asarray(x, dtype=float)
    R = x.shape[-1]
    value = float(stat(x))
    boot = [stat(x[..., rng.integers(0, R, size=R)]) for _ in range(n_boot)]
    return (value, *percentile_interval(np.array(boot)))
