"""The next-token distribution actually sampled from, defined once for sampling and for scoring.

    z = raw_logits / τ;   z[v] = −inf for v ≥ vocab_size (padding rows of the embedding matrix);
    then, only if asked, top-k and/or top-p truncation (z[v] = −inf outside the kept set).

`lmkl.models.sample` draws from softmax(z) and `lmkl.models.response_logits` returns z for the same
positions, so the statistics are computed under exactly the distribution the tokens came from:
with τ ≠ 1 the estimand is the KL between the tempered models; with truncation, p is the truncated
sampling distribution (see `lmkl.models.scoring` for what q is then).
"""

from __future__ import annotations

import torch


def check_sampling_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0 or temperature != temperature or temperature == float("inf"):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k: expected an integer ≥ 1 or None (no truncation), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a number in (0, 1] or None (no truncation), got {top_p}")


def next_token_logits(
    raw: torch.Tensor,
    *,
    temperature: float = 1.0,
    vocab_size: int | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Logits of the sampling distribution from a model's raw logits [..., V_model].

    Returns a new tensor [..., V_model] in at least float32 (float64 stays float64); differentiable.
    top_k keeps the k largest logits (ties with the k-th are kept too, so the set never depends on
    sort order); top_p keeps the smallest set of most likely tokens whose probability reaches top_p
    (the most likely token is always kept). With both, top-k is applied first (as transformers does).
    """
    check_sampling_options(temperature, top_k, top_p)
    z = raw.to(torch.promote_types(raw.dtype, torch.float32))
    if temperature != 1.0:
        z = z / temperature
    V = z.shape[-1]  # the model's output rows
    if vocab_size is not None and vocab_size < V:
        padding = torch.arange(V, device=z.device) >= vocab_size  # [V]: rows that are no token's
        z = z.masked_fill(padding, float("-inf"))  # out of place: the model's logits stay as they are
    if top_k is not None and top_k < V:
        kth = torch.topk(z, int(top_k), dim=-1).values[..., -1:]  # [..., 1]
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = torch.softmax(sorted_z, dim=-1)
        # Mass strictly before each token in the sorted order; keep while it is below top_p.
        before = probs.cumsum(-1) - probs
        drop_sorted = before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        z = z.masked_fill(drop, float("-inf"))
    return z
