"""Sample responses from p and score them under p and q: the one loop behind every KL estimate from a
model pair (`lmkl evaluate`, `lmkl estimate`, the variance study).

    out = sample_and_score(pair, prompts, 8, max_new_tokens=32, batch_size=64, generator=gen)
    values = lmkl.kl.estimate(out.stats, "rb")          # [N]; N = len(prompts) · 8

The RLOO rollout (`lmkl.rloo.trainer`) keeps its own loop: it also needs the reference's logits and
p_old's per-sequence log-probabilities of the same forward passes for the PPO epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lmkl.kl import TokenStats, concat_stats
from lmkl.models.batching import plan_batches
from lmkl.models.pair import ModelPair
from lmkl.models.sampling import sample
from lmkl.models.scoring import score_rollout


@dataclass(frozen=True)
class Scored:
    """N responses sampled from p and scored by p and q (rows of one prompt contiguous, prompt-major).

    stats: TokenStats [N, T] of the response positions (T: the widest response).
    prompt_index: [N] long, each row's prompt (index into the prompts given).
    texts: the N decoded responses (without special tokens; the prompt not included).
    lengths: [N] long, response positions including EOS.
    ended: [N] bool, the response ended with EOS (False: cut at max_new_tokens).
    sampling_s, scoring_s: seconds spent sampling and scoring.
    """

    stats: TokenStats
    prompt_index: torch.Tensor
    texts: list[str]
    lengths: torch.Tensor
    ended: torch.Tensor
    sampling_s: float
    scoring_s: float

    def __len__(self) -> int:
        return len(self.texts)


@torch.no_grad()
def sample_and_score(
    pair: ModelPair,
    prompts: list[str],
    n_per_prompt: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    batch_size: int,
    generator: torch.Generator,
    device: str | torch.device | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Scored:
    """Draw `n_per_prompt` responses per prompt from pair.p at `temperature` and score them under p and q.

    Batches follow `plan_batches(len(prompts), n_per_prompt, batch_size)`: whole prompts grouped up to
    batch_size rows, or one prompt's samples spread over several batches when they do not fit; each
    batch is one `sample` call and one `score_rollout` (micro_batch = batch_size). The same generator
    state, prompts and models give the same samples.
    device: where the results are collected (None: the model's; "cpu" keeps only one batch on an
      accelerator). on_batch: called with each batch's number of sequences (progress bars).
    """
    def move(x: torch.Tensor) -> torch.Tensor:
        return x if device is None else x.to(device)

    parts, index, texts, lengths, ended = [], [], [], [], []
    sampling_s = scoring_s = 0.0
    for prompt_ids, n in plan_batches(len(prompts), n_per_prompt, batch_size):
        t0 = time.perf_counter()
        ro = sample(pair.p, pair.tokenizer, [prompts[i] for i in prompt_ids], n_per_prompt=n,
                    max_new_tokens=max_new_tokens, temperature=temperature, generator=generator,
                    vocab_size=pair.vocab_size)
        t1 = time.perf_counter()
        stats = score_rollout(pair, ro, micro_batch=batch_size)
        sampling_s, scoring_s = sampling_s + t1 - t0, scoring_s + time.perf_counter() - t1
        parts.append(TokenStats(*(move(f) for f in stats)))
        index.append(torch.tensor(prompt_ids)[ro.prompt_index])  # batch → caller's prompt index
        texts += ro.texts
        lengths.append(move(ro.response_mask.sum(dim=1)))
        ended.append(move(ro.ended))
        if on_batch is not None:
            on_batch(len(ro))
    return Scored(concat_stats(parts), torch.cat(index), texts, torch.cat(lengths), torch.cat(ended),
                  sampling_s, scoring_s)
