"""Pool per-prompt estimates into one: the mean over prompts of the per-prompt means.

With P prompts and per-prompt estimates m_i ± se_i (independent samples per prompt),

    pooled = (1/P) Σ_i m_i,    se = sqrt(Σ_i se_i²) / P,

an unbiased estimate of the prompt-averaged KL (1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)), the prompts
taken as fixed (`lmkl.kl.pool_over_prompts`). This module only groups a
rollout's sequences by prompt.
"""

from __future__ import annotations

import torch

from lmkl.kl import Estimate, TokenStats, estimate, summarize, summarize_estimator


def estimate_per_prompt(
    stats: TokenStats, prompt_index: torch.Tensor, n_prompts: int, estimators: list[str]
) -> list[dict[str, Estimate]]:
    """For each prompt i, every estimator's Estimate from the sequences with prompt_index == i.

    Cross-fitted estimators fit prompt i's coefficient on the other prompts' sequences
    (`estimate(..., groups=prompt_index)`): exactly unbiased for each prompt's KL, and given the other
    prompts prompt i's values are i.i.d., so its Estimate is `summarize` of them. With one prompt the
    fit is within it (leave-one-out) and the standard error the jackknife of `summarize_estimator`.
    """
    groups = prompt_index.to(stats.mask.device)
    values = {name: estimate(stats, name, groups=groups) for name in estimators}
    out = []
    for i in range(n_prompts):
        rows = (prompt_index == i).nonzero().flatten()
        if rows.numel() == 0:
            raise ValueError(f"prompt {i}: no sampled sequence")
        if n_prompts == 1:
            out.append({name: summarize_estimator(stats, name) for name in estimators})
        else:
            out.append({name: summarize(values[name][rows]) for name in estimators})
    return out
