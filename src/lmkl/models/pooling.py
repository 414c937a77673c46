"""Pool per-prompt estimates into one: the mean over prompts of the per-prompt means.

With P prompts and per-prompt estimates m_i ± se_i (independent samples per prompt),

    pooled = (1/P) Σ_i m_i,    se = sqrt(Σ_i se_i²) / P,

an unbiased estimate of the prompt-averaged KL (1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)), the prompts
taken as fixed (se does not include the spread between prompts: it is not the error for the KL
averaged over a population of prompts the file was drawn from). Pure arithmetic on `Estimate`s; it
would sit in `lmkl.kl.summary` if that module offered it.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

from lmkl.kl import Estimate, TokenStats, estimate, summarize

_Z95 = NormalDist().inv_cdf(0.975)


def pool_over_prompts(per_prompt: list[Estimate]) -> Estimate:
    """The pooled Estimate: mean of means, se from the per-prompt se's, 95 % normal CI, n = total
    number of sequences, frac_negative = share of negative values among all of them."""
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


def estimate_per_prompt(
    stats: TokenStats, prompt_index: torch.Tensor, n_prompts: int, estimators: list[str]
) -> list[dict[str, Estimate]]:
    """For each prompt i, every estimator's Estimate from the sequences with prompt_index == i.

    Cross-fitted estimators fit their coefficient within the prompt (the samples of one prompt are
    i.i.d.; across prompts they are not identically distributed).
    """
    out = []
    for i in range(n_prompts):
        rows = (prompt_index == i).nonzero().flatten()
        if rows.numel() == 0:
            raise ValueError(f"prompt {i}: no sampled sequence")
        sub = TokenStats(*(f[rows] for f in stats))
        out.append({name: summarize(estimate(sub, name)) for name in estimators})
    return out
