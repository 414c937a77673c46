"""The gradient-variance study (beyond the paper; asked for by a reviewer, paper-digest §4.2, §6).

For a policy p_θ and frozen reference q, each surrogate form f of `lmkl.kl.SURROGATE_FORMS` gives a
gradient estimate from M samples per prompt over P prompts,

    ĝ_f = ∇θ (1 / (P·M)) Σ_{x} Σ_{m ≤ M} f(y_m; x),      y_m ~ p_θ(·|x),

unbiased for ∇θ (1/P) Σ_x KL(p_θ(·|x) ‖ q(·|x)) for every form but k3_loss. With R independent
estimates ĝ_1..ĝ_R (disjoint sample blocks, `lmkl.studies.slicing`) the **total variance**
E‖ĝ − E ĝ‖² is estimated without bias by

    V̂ = (Σ_r ‖ĝ_r‖² − R ‖ḡ‖²) / (R − 1),   ḡ = (1/R) Σ_r ĝ_r,

which needs only running sums — never the R gradients of D parameters at once. All forms and all
M use the same samples (one forward pass per sample chunk, one backward pass per form).
θ may be restricted to a subset of parameters (regular expressions on parameter names): the
variance of a sub-vector is the sum of its coordinates' variances, so the comparison between forms
stays meaningful on the subset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd
import torch

from lmkl.kl import UNBIASED_FORMS, surrogate_from_stats


def select_parameters(model: torch.nn.Module, patterns: Sequence[str]) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters whose name matches any pattern (re.search); every parameter if `patterns` is empty.

    Sets requires_grad on the selected ones and clears it on the others (so backward passes skip them).
    Raises ValueError naming the patterns when nothing matches.
    """
    compiled = [re.compile(p) for p in patterns]
    chosen = []
    for name, param in model.named_parameters():
        keep = not compiled or any(c.search(name) for c in compiled)
        param.requires_grad_(keep)
        if keep:
            chosen.append((name, param))
    if not chosen:
        raise ValueError(f"gradient_variance.parameters: no parameter name matches {list(patterns)}")
    return chosen


class _Moments:
    """Running Σ_r ĝ_r (a [D] float64 vector, on the parameters' device) and the per-repetition ‖ĝ_r‖²."""

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sq_norms: list[float] = []

    def add(self, g: torch.Tensor) -> float:
        """Add one estimate; returns its squared norm (one number crosses to the host, not [D])."""
        self.sum += g
        sq = float(g.square().sum())
        self.sq_norms.append(sq)
        return sq

    def total_variance(self) -> float:
        R = len(self.sq_norms)
        mean = self.sum / R
        return float((sum(self.sq_norms) - R * mean.square().sum()) / (R - 1))


def run_gradient_study(
    pair,
    prompts: Sequence[str],
    *,
    forms: Sequence[str],
    sizes: Sequence[int],
    repetitions: int,
    patterns: Sequence[str],
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-repetition rows, summary rows) of the study for one (p_θ, q) pair.

    per repetition: form, M, repetition, sq_norm = ‖ĝ_r‖².
    summary: form, M, total_variance V̂, mean_norm = ‖ḡ‖, dist_to_unbiased = ‖ḡ_f − ḡ_U‖ at the
    largest M, where ḡ_U averages the unbiased forms (a visible gap for k3_loss is its bias; for
    the unbiased forms it is sampling noise), n_params = D.
    """
    from lmkl.models import sample

    if repetitions < 2:
        raise ValueError(f"repetitions: expected ≥ 2 to estimate a variance, got {repetitions}")
    params = select_parameters(pair.p, patterns)
    tensors = [p for _, p in params]
    D = sum(p.numel() for p in tensors)  # dimension of θ (the selected subset)
    sizes = sorted(int(m) for m in sizes)
    max_m, P = sizes[-1], len(prompts)
    with torch.no_grad():
        ro = sample(
            pair.p, pair.tokenizer, list(prompts), n_per_prompt=repetitions * max_m,
            max_new_tokens=max_new_tokens, temperature=temperature, generator=generator,
            vocab_size=pair.vocab_size,
        )  # rows of prompt i: [i·R·max_m, (i+1)·R·max_m)
    moments = {(f, m): _Moments(D, tensors[0].device) for f in forms for m in sizes}
    rows = []
    with torch.enable_grad():  # whatever the caller's mode: the estimates are gradients
        _accumulate(pair, ro, forms, sizes, repetitions, P, tensors, D, moments, rows)
    means = {f: moments[(f, max_m)].sum / repetitions for f in forms}
    unbiased = [f for f in forms if f in UNBIASED_FORMS]
    pooled = torch.stack([means[f] for f in unbiased]).mean(0) if unbiased else None
    summary = []
    for (f, m), mom in moments.items():
        mean = mom.sum / repetitions
        summary.append(
            {
                "form": f, "M": m, "total_variance": mom.total_variance(), "mean_norm": float(mean.norm()),
                "dist_to_unbiased": float((means[f] - pooled).norm()) if pooled is not None and m == max_m else float("nan"),
                "n_params": D, "repetitions": repetitions,
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(summary)


def _accumulate(pair, ro, forms, sizes, repetitions, P, tensors, D, moments, rows) -> None:
    """Add every repetition's ĝ_f (for each form f and size M) to `moments`, one row each to `rows`."""
    from lmkl.models import score_rollout

    max_m = sizes[-1]
    for r in range(repetitions):
        device = tensors[0].device
        running = {f: torch.zeros(D, dtype=torch.float64, device=device) for f in forms}  # Σ over samples so far
        lo = 0
        for m in sizes:
            # Samples lo..m−1 of repetition r's block, for every prompt: the chunk the M = m estimate adds.
            idx = [i * repetitions * max_m + r * max_m + j for i in range(P) for j in range(lo, m)]
            stats = score_rollout(pair, ro.select(idx))  # p's graph kept (grad enabled)
            for k, f in enumerate(forms):
                loss = surrogate_from_stats(stats, f).sum()
                grads = torch.autograd.grad(loss, tensors, retain_graph=k + 1 < len(forms), allow_unused=True)
                flat = torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1) for g, t in zip(grads, tensors)])
                running[f] += flat.double()
                g_hat = running[f] / (P * m)  # ĝ_f from M = m samples per prompt
                rows.append({"form": f, "M": m, "repetition": r, "sq_norm": moments[(f, m)].add(g_hat)})
            lo = m
