"""Pool per-prompt estimates into one: the mean over prompts of the per-prompt means.

With P prompts and per-prompt estimates m_i ± se_i (independent samples per prompt),

    pooled = (1/P) Σ_i m_i,    se = sqrt(Σ_i se_i²) / P,

an unbiased estimate of the prompt-averaged KL (1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)), the prompts
taken as fixed (see `lmkl.kl.pool_over_prompts`, re-exported here). This module only groups a
rollout's sequences by prompt.
"""

from __future__ import annotations

import torch

from lmkl.kl import Estimate, TokenStats, estimate, pool_over_prompts, summarize

__all__ = ["estimate_per_prompt", "pool_over_prompts"]


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
