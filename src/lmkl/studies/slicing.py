"""How one shared set of samples is cut into repetitions and sample sizes.

Per prompt we draw N = R · max(M) samples once. Repetition r owns the block
[r · max(M), (r + 1) · max(M)) and, for each sample size M, uses the first M samples of its block.
So (i) the R repetitions are independent (disjoint blocks of i.i.d. samples), (ii) every estimator
and every M sees the same samples, and (iii) the M-sample estimates are nested within a repetition
(M = 1 is the first sample of the M = 16 estimate), which is what makes "std vs M" curves smooth
and comparable across estimators.
"""

from __future__ import annotations


def repetition_block(r: int, max_m: int) -> range:
    """Sample indices (within one prompt) owned by repetition r: [r·max_m, (r+1)·max_m)."""
    if r < 0 or max_m < 1:
        raise ValueError(f"r, max_m: expected r ≥ 0 and max_m ≥ 1, got {r}, {max_m}")
    return range(r * max_m, (r + 1) * max_m)


def nested_slices(repetitions: int, sizes: list[int]) -> list[tuple[int, int, range]]:
    """All (r, M, indices) with indices = the first M samples of repetition r's block, M ascending."""
    if repetitions < 1:
        raise ValueError(f"repetitions: expected ≥ 1, got {repetitions}")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes: expected sample sizes ≥ 1, got {sizes}")
    max_m = max(sizes)
    out = []
    for r in range(repetitions):
        block = repetition_block(r, max_m)
        out += [(r, m, block[:m]) for m in sorted(sizes)]
    return out
