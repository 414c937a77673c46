"""Which samples share a micro-batch and a leave-one-out baseline.

Sample layout (lmkl.models.sample): the k samples of prompt i are contiguous, sample s = i·k + c.

A `MicroBatch` holds sample indices [m] and local group ids [m] (0 .. m/k − 1): the leave-one-out
baseline of a sample is the mean of the *other* members of its group (`lmkl.rloo.baselines`).

- per_prompt: a group is the k samples of one prompt (true RLOO). Prompts are shuffled each epoch
  and whole prompts fill the micro-batches.
- original: the authors' trl-0.16 fork, simulated index for index (`reference/paper-digest.md` §4.4).
  Their rollout repeats the prompt batch k times (`queries.repeat(k, 1)`), so their sample a = c·P + i;
  each PPO epoch reshapes arange(k·P) to (k, P), shuffles the *rows*, flattens, cuts mini-batches then
  micro-batches of m, and inside a micro-batch reshapes the rewards to (k, m/k) and takes the baseline
  over the k rows: position j is grouped with j ± m/k. With k = 2, P = 16, m = 16 a micro-batch holds
  one copy of each prompt and prompt i is paired with prompt i + 8. Still an unbiased baseline
  (independent samples), but not per-prompt.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class MicroBatch(NamedTuple):
    indices: torch.Tensor  # [m] long, sample indices into the rollout (prompt-major layout)
    groups: torch.Tensor  # [m] long, local baseline-group id in 0 .. m/k − 1


def epoch_schedule(
    pairing: str,
    *,
    num_prompts: int,
    k: int,
    num_mini_batches: int,
    micro_batch_size: int,
    generator: torch.Generator,
) -> list[list[MicroBatch]]:
    """One PPO epoch: mini-batches (one optimizer step each) of micro-batches (one backward each)."""
    if pairing == "per_prompt":
        return per_prompt_schedule(num_prompts, k, num_mini_batches, micro_batch_size, generator)
    if pairing == "original":
        return original_schedule(num_prompts, k, num_mini_batches, micro_batch_size, generator)
    raise ValueError(f"baseline_pairing: expected 'per_prompt' or 'original', got {pairing!r}")


def per_prompt_schedule(
    num_prompts: int, k: int, num_mini_batches: int, micro_batch_size: int, generator: torch.Generator
) -> list[list[MicroBatch]]:
    """Shuffle prompts, keep each prompt's k samples together, group id = prompt's rank in the micro-batch."""
    order = torch.randperm(num_prompts, generator=generator)  # [P] prompt order this epoch
    samples = (order.unsqueeze(1) * k + torch.arange(k)).reshape(-1)  # [P·k], prompt-major
    groups = torch.arange(num_prompts).repeat_interleave(k)  # [P·k] global group id = prompt rank
    return _cut(samples, groups, num_mini_batches, micro_batch_size, k)


def original_schedule(
    num_prompts: int, k: int, num_mini_batches: int, micro_batch_size: int, generator: torch.Generator
) -> list[list[MicroBatch]]:
    """The authors' index logic (see the module docstring), mapped to our prompt-major sample ids."""
    P, m = num_prompts, micro_batch_size
    theirs = torch.arange(k * P).reshape(k, P)  # their sample a = c·P + i at row c, column i
    theirs = theirs[torch.randperm(k, generator=generator)].reshape(-1)  # np.random.shuffle: rows only
    ours = (theirs % P) * k + theirs // P  # a = c·P + i  ->  s = i·k + c
    # Their micro-batch is reshaped (k, m/k) and baselined over dim 0: position j of a micro-batch
    # is grouped with the positions ≡ j mod m/k, whatever prompts they hold.
    return _cut(ours, torch.arange(len(ours)) % (m // k), num_mini_batches, m, k)


def _cut(
    samples: torch.Tensor, groups: torch.Tensor, num_mini_batches: int, micro_batch_size: int, k: int
) -> list[list[MicroBatch]]:
    mini = len(samples) // num_mini_batches
    schedule = []
    for a in range(0, len(samples), mini):
        micros = []
        for b in range(a, a + mini, micro_batch_size):
            g = groups[b : b + micro_batch_size]
            micros.append(MicroBatch(samples[b : b + micro_batch_size], g - g.min()))
        schedule.append(micros)
    return schedule
