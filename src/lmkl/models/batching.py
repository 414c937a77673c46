"""Split a (prompts × samples) job into generation batches; `lmkl.kl.concat_stats` joins their statistics back."""

from __future__ import annotations


def plan_batches(n_prompts: int, n_samples: int, batch_size: int) -> list[tuple[list[int], int]]:
    """[(prompt indices, samples per prompt)] covering every prompt × n_samples, ≤ batch_size rows each.

    Whole prompts are grouped (batch_size // n_samples of them) when their samples fit in one batch;
    otherwise one prompt's samples are spread over several batches. Deterministic, prompt-major order.
    """
    if min(n_prompts, n_samples, batch_size) < 1:
        raise ValueError(f"expected positive counts, got {n_prompts} prompts, {n_samples} samples, batch {batch_size}")
    if n_samples <= batch_size:
        k = batch_size // n_samples  # prompts per batch
        return [(list(range(i, min(i + k, n_prompts))), n_samples) for i in range(0, n_prompts, k)]
    plan = []
    for i in range(n_prompts):
        for start in range(0, n_samples, batch_size):
            plan.append(([i], min(batch_size, n_samples - start)))
    return plan
