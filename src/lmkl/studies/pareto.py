"""The reward–KL Pareto front of a set of trained runs (paper §5.3: "RB runs are on the frontier
78 % of the time").

A run i dominates run j when kl_i ≤ kl_j and reward_i ≥ reward_j with at least one strict
inequality (lower KL to the reference and higher reward are both better). The front is the set of
non-dominated runs. The share per estimator is (front runs trained with it) / (front size): the
reading of "78 %" that paper-digest §5.3 finds more likely.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def pareto_front(kl: Sequence[float], reward: Sequence[float]) -> np.ndarray:
    """Boolean mask [n]: True where the run is not dominated (lower KL, higher reward are better).

    Ties: two runs with identical (kl, reward) do not dominate each other, so both stay on the front.
    Runs with a NaN coordinate are never on the front. O(n log n): sort by KL, keep a running max.
    """
    kl_a = np.asarray(kl, dtype=float)
    rw_a = np.asarray(reward, dtype=float)
    if kl_a.shape != rw_a.shape or kl_a.ndim != 1:
        raise ValueError(f"kl, reward: expected two 1-D sequences of one length, got {kl_a.shape}, {rw_a.shape}")
    ok = np.isfinite(kl_a) & np.isfinite(rw_a)
    front = np.zeros(kl_a.shape, dtype=bool)
    idx = np.flatnonzero(ok)
    # Sort by KL ascending, reward descending: a point is on the front iff its reward is strictly
    # above every reward seen at a strictly smaller KL, or it ties the best point exactly.
    order = idx[np.lexsort((-rw_a[idx], kl_a[idx]))]
    best_reward, best_kl = -np.inf, None
    for i in order:
        if rw_a[i] > best_reward:
            front[i] = True
            best_reward, best_kl = rw_a[i], kl_a[i]
        elif rw_a[i] == best_reward and kl_a[i] == best_kl:
            front[i] = True  # an exact duplicate of a front point
    return front


def front_share(labels: Sequence[str], on_front: Sequence[bool]) -> dict[str, float]:
    """Share of the front points carrying each label (e.g. the training estimator); sums to 1.

    Labels with no front point get 0.0; an empty front gives NaN for every label.
    """
    labels = list(labels)
    on = np.asarray(on_front, dtype=bool)
    counts = Counter(lab for lab, f in zip(labels, on) if f)
    total = int(on.sum())
    return {lab: (counts[lab] / total if total else float("nan")) for lab in sorted(set(labels))}
