"""The one place where per-sequence values are reduced to a reported estimate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate with its uncertainty (scipy-style result object).

    mean: the estimate; stderr: sample standard deviation (n − 1) / √n; ci_low, ci_high: 95 % normal
    interval; n: number of per-sequence values; frac_negative: share of values below zero.
    """

    mean: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    frac_negative: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.stderr:.2g} (95% CI [{self.ci_low:.4g}, {self.ci_high:.4g}], n={self.n})"


def summarize(values: torch.Tensor) -> Estimate:
    """Mean, standard error, 95 % CI and share of negatives of per-sequence values [n].

    The statistics are computed in float64. With n = 1 the standard error is undefined (NaN).
    """
    x = torch.as_tensor(values).detach().to("cpu", torch.float64).reshape(-1)
    n = x.numel()
    if n == 0:
        raise ValueError("values: expected at least one per-sequence value, got an empty tensor")
    if bool(torch.isnan(x).any()):
        raise ValueError("values: contains NaN")
    mean = float(x.mean())
    if n > 1 and math.isfinite(mean):
        stderr = float(x.std(correction=1)) / math.sqrt(n)
    else:
        stderr = math.nan if n == 1 else math.inf
    return Estimate(
        mean=mean,
        stderr=stderr,
        ci_low=mean - _Z95 * stderr,
        ci_high=mean + _Z95 * stderr,
        n=n,
        frac_negative=float((x < 0).double().mean()),
    )


def pool_over_prompts(per_prompt: list[Estimate]) -> Estimate:
    """Pool per-prompt Estimates into the mean over prompts of the per-prompt means.

    With P prompts and independent per-prompt estimates m_i ± se_i:
        pooled = (1/P) Σ_i m_i,   se = sqrt(Σ_i se_i²) / P,
    unbiased for the prompt-averaged KL (1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)), the prompts taken as
    fixed (se leaves out the spread between prompts: it is not the error for the KL averaged over a
    population the prompts were drawn from). n = all sequences; frac_negative = share among them.
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
        n=n, frac_negative=frac_negative,
    )
