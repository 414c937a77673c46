"""Exact bias and variance of every value estimator and gradient form on lmkl.exact toys.

No sampling: every quantity is a finite sum over the support of a tabular toy LM (float64), so the
tables are exact up to rounding. The toys are the two-step counterexample (where Var(rb) > Var(mc),
paper-digest §3.2) and seeded random tabular pairs (`lmkl.exact.random_tabular_pair`).

Value estimators: bias = E[estimate] − KL and the variance of one sample's value. The cross-fitted
estimators (cv_opt, rb_cv) have no per-sample value: their moments are those of the M-sample
estimate (`lmkl.exact.crossfit_moments`'s sum, vectorised in `crossfit_exact`), reported as M · Var so that every row is a
"per-sample-equivalent" variance (Var of the M-sample mean = that / M for the others).
Gradient forms: bias = ‖E[ĝ] − ∇KL‖ and total variance E‖ĝ − E ĝ‖² of a one-sample estimate ĝ.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from lmkl.exact import (
    Moments,
    counterexample,
    estimator_moments,
    exact_kl,
    exact_kl_grad,
    random_tabular_pair,
    support_stats,
)
from lmkl.kl import (
    CROSSFIT_BOUNDS,
    CROSSFITTED,
    control_variate_pair,
    crossfit_coefficients,
    surrogate_from_stats,
)

SWEEP_SIZES = (2, 4, 8, 16, 32, 64, 128)  # M of the cross-fitted sweep (the oracle figure's third panel)


def toy_pairs(n_random: int, seed: int = 0) -> list[tuple[str, object, object]]:
    """[(name, p, q)]: the counterexample, then n_random seeded random tabular pairs."""
    return [("counterexample", *counterexample())] + [
        (f"random{seed + i}", *random_tabular_pair(seed + i)) for i in range(n_random)
    ]


def value_oracle(toys, estimators: Sequence[str], crossfit_m: int) -> list[dict]:
    """Rows {toy, estimator, M, kl, mean, bias, var} (var: per-sample-equivalent, see module doc)."""
    rows = []
    for name, p, q in toys:
        kl = float(exact_kl(p, q))
        for e in estimators:
            if e in CROSSFITTED:
                mom, m = crossfit_exact(p, q, e, crossfit_m), crossfit_m
                var = mom.var * m
            else:
                mom, m = estimator_moments(p, q, e), 1
                var = mom.var
            rows.append({"study": "oracle", "toy": name, "estimator": e, "M": m, "kl": kl, "mean": mom.mean,
                         "bias": mom.mean - kl, "var": var, "how": "exact"})
    return rows


def _multisets(S: int, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All multisets of M draws from S strings as index rows [N, M], with log multinomial coefficients [N]."""
    idx = torch.tensor(list(itertools.combinations_with_replacement(range(S), M)))
    counts = torch.nn.functional.one_hot(idx, S).sum(1).double()  # [N, S]
    return idx, math.lgamma(M + 1) - torch.lgamma(counts + 1).sum(1)


def crossfit_exact(p, q, estimator: str, M: int) -> Moments:
    """`lmkl.exact.crossfit_moments(p, q, estimator, M, ordered=False)` (leave-one-out), vectorised over
    the multisets: the same sum, in one batched call of the cross-fitting instead of one per multiset."""
    sup, stats = support_stats(p, q)
    w = sup.weights.double()
    x, z = control_variate_pair(stats, estimator)
    idx, log_coef = _multisets(w.numel(), M)
    weight = (log_coef + w.log()[idx].sum(1)).exp()
    X, Z = x[idx], z[idx]
    est = (X + crossfit_coefficients(X, Z, bounds=CROSSFIT_BOUNDS[estimator]) * Z).mean(-1)
    mean = (weight * est).sum()
    return Moments(float(mean), float((weight * (est - mean).square()).sum()))


def crossfit_sweep(
    toys, sizes: Sequence[int] = SWEEP_SIZES, *, batches: int = 5000, seed: int = 0, max_multisets: int = 5000
) -> list[dict]:
    """M·Var of cv_opt and rb_cv against their bases (mc, rb) for one group of M samples, per toy and M.

    Rows {study: "crossfit_sweep", toy, estimator, M, kl, mean, bias, var (= M·Var), ratio (to the
    base's per-sample variance), how}. Exact (every multiset, multinomial weights, leave-one-out
    cross-fitting, vectorised) where there are at most `max_multisets`; otherwise from `batches`
    simulated batches, the ratio then taken against the base's mean on the same batches.
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name, p, q in toys:
        kl = float(exact_kl(p, q))
        sup, stats = support_stats(p, q)
        w, S = sup.weights.double(), sup.weights.numel()
        for e in sorted(CROSSFITTED):
            x, z = control_variate_pair(stats, e)  # x: the base estimator's values (rb or mc) per string
            base_var = float((w * (x - (w * x).sum()).square()).sum())
            for M in sizes:
                if math.comb(S + M - 1, M) <= max_multisets:
                    idx, log_coef = _multisets(S, M)
                    weight = (log_coef + w.log()[idx].sum(1)).exp()
                    how = "exact"
                else:
                    idx = torch.multinomial(w, batches * M, replacement=True, generator=gen).reshape(batches, M)
                    weight = torch.full((batches,), 1.0 / batches, dtype=torch.float64)
                    how = f"simulated ({batches} batches)"
                X, Z = x[idx], z[idx]
                est = (X + crossfit_coefficients(X, Z, bounds=CROSSFIT_BOUNDS[e]) * Z).mean(-1)
                mean = float((weight * est).sum())
                var = float((weight * (est - mean).square()).sum())
                if how == "exact":
                    ratio = M * var / base_var
                else:  # same batches: the ratio's noise is that of the difference
                    b = X.mean(-1)
                    ratio = var / float((weight * (b - (weight * b).sum()).square()).sum())
                rows.append({"study": "crossfit_sweep", "toy": name, "estimator": e, "M": M, "kl": kl,
                             "mean": mean, "bias": mean - kl, "var": M * var, "ratio": ratio, "how": how})
    return rows


def per_string_gradients(p, q, form: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights [S] = p(y), grads [S, D]): the one-sample gradient estimate ∇θ f(y) for each string y
    of p's support, θ = p's logits flattened (entries fixed to −inf by the structure get gradient 0)."""
    theta = p.logits.detach().clone().requires_grad_(True)
    sup, stats = support_stats(p.with_logits(theta), q)
    loss = surrogate_from_stats(stats, form)  # [S]
    grads = []
    for i in range(loss.numel()):
        (g,) = torch.autograd.grad(loss[i], theta, retain_graph=True)
        grads.append(torch.nan_to_num(g, nan=0.0).reshape(-1))
    return sup.weights.double(), torch.stack(grads).double()


def gradient_oracle(toys, forms: Sequence[str]) -> list[dict]:
    """Rows {toy, form, grad_norm, bias_norm, rel_bias, total_var} of the one-sample gradient estimate."""
    rows = []
    for name, p, q in toys:
        true = torch.nan_to_num(exact_kl_grad(p, q), nan=0.0).reshape(-1).double()
        for f in forms:
            w, G = per_string_gradients(p, q, f)
            mean = (w[:, None] * G).sum(0)
            total_var = float((w * (G - mean).square().sum(1)).sum())
            bias = float((mean - true).norm())
            rows.append(
                {"toy": name, "form": f, "grad_norm": float(true.norm()), "bias_norm": bias,
                 "rel_bias": bias / float(true.norm()), "total_var": total_var}
            )
    return rows
