"""Micro-batches and leave-one-out groups: per-prompt RLOO, and the authors' original index logic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lmkl.rloo import epoch_schedule, loo_baseline, original_schedule, per_prompt_schedule


def prompt_groups(samples: torch.Tensor, groups: torch.Tensor, prompt_index: torch.Tensor) -> bool:
    """True if every baseline group of a micro-batch holds samples of one prompt only."""
    p = prompt_index[samples]
    return all(bool((p[groups == g] == p[groups == g][0]).all()) for g in groups.unique())


@pytest.mark.parametrize(("P", "k", "mini", "micro"), [(16, 2, 1, 16), (6, 3, 2, 9), (8, 4, 1, 8), (5, 2, 1, 2)])
def test_per_prompt_groups_hold_one_prompt_each(P, k, mini, micro):
    sched = per_prompt_schedule(P, k, mini, micro, torch.Generator().manual_seed(1))
    prompt_index = torch.arange(P).repeat_interleave(k)  # lmkl.models' layout: a prompt's samples contiguous
    seen = torch.cat([m.indices for mb in sched for m in mb])
    assert sorted(seen.tolist()) == list(range(P * k))  # every sample exactly once per epoch
    for mb in sched:
        for m in mb:
            assert prompt_groups(m.indices, m.groups, prompt_index)
            assert torch.bincount(m.groups).tolist() == [k] * (len(m.indices) // k)


def authors_micro_batches(P: int, k: int, mini_size: int, micro: int, row_perm: list[int]):
    """The authors' trl fork, written out with numpy as in their trainer: returns, per micro-batch,
    the (prompt, copy) of each position and the baseline partner sets (reshape(k, -1), sum over dim 0)."""
    local_batch = k * P
    prompt_pairs = np.arange(local_batch).reshape(k, P)
    prompt_pairs = prompt_pairs[row_perm]  # np.random.shuffle permutes the rows
    b_inds = prompt_pairs.flatten()
    out = []
    for a in range(0, local_batch, mini_size):
        mini_inds = b_inds[a : a + mini_size]
        for b in range(0, mini_size, micro):
            inds = mini_inds[b : b + micro]
            # their sample a comes from queries.repeat(k, 1): prompt a % P, copy a // P
            members = [(int(i) % P, int(i) // P) for i in inds]
            cols = np.arange(micro).reshape(k, -1)  # position of each reward after reshape(k, -1)
            groups = [frozenset(members[j] for j in cols[:, c]) for c in range(cols.shape[1])]
            out.append((members, set(groups)))
    return out


@pytest.mark.parametrize(("P", "k", "num_mini", "micro"), [(16, 2, 1, 16), (16, 2, 2, 8), (6, 3, 1, 9), (4, 2, 1, 4)])
def test_original_reproduces_the_authors_index_logic(P, k, num_mini, micro):
    for seed in range(4):
        sched = original_schedule(P, k, num_mini, micro, torch.Generator().manual_seed(seed))
        ours = []
        for mb in sched:
            for m in mb:
                members = [(int(s) // k, int(s) % k) for s in m.indices]  # our s = prompt·k + copy
                groups = {frozenset(members[j] for j in (m.groups == g).nonzero().flatten().tolist())
                          for g in m.groups.unique().tolist()}
                ours.append((members, groups))
        candidates = [authors_micro_batches(P, k, k * P // num_mini, micro, list(perm))
                      for perm in itertools.permutations(range(k))]
        assert ours in candidates


def test_original_pairs_prompt_i_with_i_plus_8():
    """The released setting (16 prompts, k = 2, micro-batches of 16): one copy of each prompt per
    micro-batch, and prompt i's baseline is prompt i + 8's reward (paper-digest §4.4)."""
    (mini,) = epoch_schedule("original", num_prompts=16, k=2, num_mini_batches=1, micro_batch_size=16,
                             generator=torch.Generator().manual_seed(0))
    for m in mini:
        prompts = (m.indices // 2).tolist()
        assert sorted(prompts) == list(range(16))
        for g in range(8):
            pair = sorted(p for p, gg in zip(prompts, m.groups.tolist()) if gg == g)
            assert pair == [g, g + 8]


def test_loo_baseline_values():
    v = torch.tensor([1.0, 3.0, 10.0, 20.0, 30.0])
    groups = torch.tensor([0, 0, 1, 1, 1])
    assert loo_baseline(v, groups).tolist() == [3.0, 1.0, 25.0, 20.0, 15.0]
    with pytest.raises(ValueError, match="groups"):
        loo_baseline(v, torch.tensor([0, 0, 1, 1, 2]))
