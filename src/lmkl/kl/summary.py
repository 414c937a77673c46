"""The one place where per-sequence values are reduced to a reported estimate with its interval.

Intervals (95 %, `INTERVALS`; the Estimate says which one it carries):
  normal     mean ± 1.96 · stderr. Undercovers for skewed values at moderate n (k3_token covered the
             exact KL in 88–91 % of batches at M = 64 on random toys).
  skew       Hall's (1992) skewness-corrected interval: the studentized mean T = (x̄ − μ)/se is mapped
             by g(T) = T + (a/3)T² + (a²/27)T³ + a/6, a = γ̂/√n (γ̂ the sample skewness), which
             removes T's first-order skew; inverted in closed form, g⁻¹(z) = (3/a)[(1 + a(z − a/6))^{1/3} − 1].
             Asymmetric: it reaches further on the side of the long tail.
  bootstrap  bootstrap-t: quantiles of the studentized mean over `resamples` resamples (seeded).
Cross-fitted values (rb_cv, cv_opt) are not independent — each coefficient is fitted on the
others — so `summarize_estimator` takes their standard error from a delete-a-fold jackknife that
refits every coefficient (`lmkl.kl.crossfit.jackknife_means`); coverage is measured in
`benchmarks/interval_coverage.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile
INTERVALS = ("normal", "skew", "bootstrap")


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate with its uncertainty (scipy-style result object).

    mean: the estimate; stderr: its standard error (sample standard deviation (n − 1) / √n for
    independent values, jackknife for cross-fitted ones); ci_low, ci_high: the 95 % interval named by
    `interval` (see the module doc); n: number of per-sequence values; frac_negative: share of values
    below zero.
    """

    mean: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    frac_negative: float
    interval: str = "normal"

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.mean:.4g} ± {self.stderr:.2g} (95% CI [{self.ci_low:.4g}, {self.ci_high:.4g}], "
            f"{self.interval}, n={self.n})"
        )


def _check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval: expected one of {list(INTERVALS)}, got {interval!r}")


def _as_values(values) -> torch.Tensor:
    x = torch.as_tensor(values).detach().to("cpu", torch.float64).reshape(-1)
    if x.numel() == 0:
        raise ValueError("values: expected at least one per-sequence value, got an empty tensor")
    if bool(torch.isnan(x).any()):
        raise ValueError("values: contains NaN")
    return x


def skewness(x: torch.Tensor) -> torch.Tensor:
    """Sample skewness γ̂ = m₃ / m₂^{3/2} (biased moments) over the last dimension; 0 when m₂ = 0."""
    d = x - x.mean(-1, keepdim=True)
    m2, m3 = d.square().mean(-1), d.pow(3).mean(-1)
    return torch.where(m2 > 0, m3 / m2.clamp(min=torch.finfo(x.dtype).tiny) ** 1.5, torch.zeros_like(m2))


def skew_interval(mean, stderr, skew, n) -> tuple[torch.Tensor, torch.Tensor]:
    """Hall's (1992) skewness-corrected 95 % interval (module doc); elementwise over tensors."""
    mean, stderr, skew = (torch.as_tensor(v, dtype=torch.float64) for v in (mean, stderr, skew))
    a = skew / math.sqrt(n)

    def g_inv(z: float) -> torch.Tensor:
        u = 1 + a * (z - a / 6)
        cube_root = torch.sign(u) * u.abs().pow(1 / 3)
        return torch.where(a.abs() > 1e-12, 3 * (cube_root - 1) / torch.where(a == 0, 1.0, a), torch.full_like(a, z))

    return mean - stderr * g_inv(_Z95), mean - stderr * g_inv(-_Z95)


def bootstrap_t_interval(x: torch.Tensor, resamples: int, seed: int) -> tuple[float, float]:
    """Bootstrap-t 95 % interval of the mean of x [n]: the 2.5 % and 97.5 % quantiles of the resampled
    studentized means (x̄* − x̄)/se*, inverted around x̄ with the sample's se."""
    n = x.numel()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (resamples, n), generator=g)
    xb = x[idx]  # [resamples, n]
    se_b = xb.std(-1, correction=1) / math.sqrt(n)
    t = ((xb.mean(-1) - x.mean()) / se_b)[se_b > 0]  # resamples of one repeated value carry no t
    se = float(x.std(correction=1)) / math.sqrt(n)
    if t.numel() < 2:
        return float(x.mean()) - _Z95 * se, float(x.mean()) + _Z95 * se
    lo_q, hi_q = torch.quantile(t, torch.tensor([0.025, 0.975], dtype=t.dtype))
    return float(x.mean() - hi_q * se), float(x.mean() - lo_q * se)


def _interval(x: torch.Tensor, mean: float, stderr: float, interval: str, resamples: int, seed: int):
    n = x.numel()
    if not (n > 1 and math.isfinite(stderr) and stderr > 0) or interval == "normal":
        return mean - _Z95 * stderr, mean + _Z95 * stderr
    if interval == "skew":
        lo, hi = skew_interval(mean, stderr, skewness(x), n)
        return float(lo), float(hi)
    return bootstrap_t_interval(x, resamples, seed)


def summarize(values: torch.Tensor, *, interval: str = "normal", resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean, standard error, 95 % interval and share of negatives of independent per-sequence values [n].

    interval: "normal" | "skew" | "bootstrap" (module doc); resamples, seed: of the bootstrap. The
    statistics are computed in float64. With n = 1 the standard error is undefined (NaN).
    Cross-fitted values (cv_opt, rb_cv) are not independent: use `summarize_estimator`.
    """
    _check_interval(interval)
    x = _as_values(values)
    n = x.numel()
    mean = float(x.mean())
    if n > 1 and math.isfinite(mean):
        stderr = float(x.std(correction=1)) / math.sqrt(n)
    else:
        stderr = math.nan if n == 1 else math.inf
    lo, hi = _interval(x, mean, stderr, interval, resamples, seed)
    return Estimate(
        mean=mean, stderr=stderr, ci_low=lo, ci_high=hi, n=n,
        frac_negative=float((x < 0).double().mean()), interval=interval,
    )  # fmt: skip


def summarize_estimator(
    stats,
    estimator: str,
    *,
    folds: int | None = None,
    groups: torch.Tensor | None = None,
    interval: str = "normal",
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """`summarize(estimate(stats, estimator, ...))` with a standard error that is honest for the
    cross-fitted estimators: for cv_opt and rb_cv, the delete-a-fold jackknife over the folds the
    coefficients are fitted on (with groups: over groups, the error for groups drawn at random; each
    replicate refits every coefficient), (K − 1)/K · Σ_d (θ̂_(−d) − θ̄)² for K folds; the interval is
    "normal" or "skew" around it ("bootstrap" resamples single values, which cross-fitting forbids).
    Other estimators: exactly `summarize`.
    """
    from lmkl.kl.crossfit import BOUNDS, jackknife_means
    from lmkl.kl.estimators import CROSSFITTED, control_variate_pair, estimate

    _check_interval(interval)
    values = estimate(stats, estimator, folds=folds, groups=groups)
    if estimator not in CROSSFITTED:
        return summarize(values, interval=interval, resamples=resamples, seed=seed)
    if interval == "bootstrap":
        raise ValueError(f"interval: 'bootstrap' resamples independent values; {estimator}'s are cross-fitted: use 'normal' or 'skew'")
    x = _as_values(values)
    n, mean = x.numel(), float(x.mean())
    if n < 2 or not math.isfinite(mean):
        stderr = math.nan if n == 1 else math.inf
    else:
        cx, cz = control_variate_pair(stats, estimator)
        reps, _ = jackknife_means(cx.cpu(), cz.cpu(), folds, groups=None if groups is None else torch.as_tensor(groups).cpu(), bounds=BOUNDS[estimator])
        K = reps.numel()
        stderr = math.sqrt((K - 1) / K * float((reps - reps.mean()).square().sum()))
    lo, hi = _interval(x, mean, stderr, interval, resamples, seed)
    return Estimate(
        mean=mean, stderr=stderr, ci_low=lo, ci_high=hi, n=n,
        frac_negative=float((x < 0).double().mean()), interval=interval,
    )  # fmt: skip


def pool_over_prompts(per_prompt: list[Estimate]) -> Estimate:
    """Pool per-prompt Estimates into the mean over prompts of the per-prompt means.

    With P prompts and independent per-prompt estimates m_i ± se_i:
        pooled = (1/P) Σ_i m_i,   se = sqrt(Σ_i se_i²) / P,
    unbiased for the prompt-averaged KL (1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)), the prompts taken as
    fixed (se leaves out the spread between prompts: it is not the error for the KL averaged over a
    population the prompts were drawn from). n = all sequences; frac_negative = share among them.
    The pooled interval is normal (a mean over prompts is closer to normal than any one prompt's).
    """
    if not per_prompt:
        raise ValueError("per_prompt: expected at least one per-prompt Estimate")
    P = len(per_prompt)
    mean = math.fsum(e.mean for e in per_prompt) / P
    stderr = math.sqrt(math.fsum(e.stderr**2 for e in per_prompt)) / P
    n = sum(e.n for e in per_prompt)
    frac_negative = math.fsum(e.frac_negative * e.n for e in per_prompt) / n
    return Estimate(
        mean=mean, stderr=stderr, ci_low=mean - _Z95 * stderr, ci_high=mean + _Z95 * stderr,
        n=n, frac_negative=frac_negative, interval="normal",
    )
