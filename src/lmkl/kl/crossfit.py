"""Cross-fitted control-variate coefficients: exactly unbiased, and never a noisy fit at small M.

For a statistic X with a zero-mean control variate Z, X + c·Z is unbiased for any c fixed in
advance, and c* = −Cov(X, Z)/Var(Z) minimizes its variance. Fitting c on the samples it is applied
to adds an O(1/n) bias; here the coefficient applied to fold k is a function of the **other folds'
values only** (prefix and suffix sums over the folds, never "total minus own"), so with independent
samples it is independent of the values it multiplies and E[c_k Z_i] = E[c_k] E[Z_i] = 0 exactly.

Folds. Without `groups`: sample i is in fold i mod K (K = n: leave-one-out). With `groups` (e.g. the
prompt index of each sequence): the folds are sets of whole groups, group g (numbered in sorted
order) in fold g mod K (K = number of groups: leave-one-group-out). Samples of different groups are
independent, so the estimate stays exactly unbiased although they are not identically distributed;
the fit pools the within-group moments, c = −Σ_g Cov_g(X, Z) / Σ_g Var_g(Z) (each group centred on its
own means; groups of one sample centred together), the coefficient minimizing the variance of the
mean over groups. 16 prompts × 4 samples then fit each prompt's coefficient on 60 samples instead of 3.

Safeguards (the trade-off: a little variance left on the table when the fit would have helped,
against a fit that is noise). Measured in `benchmarks/crossfit_variance.py`:
  1. fewer than MIN_FIT_SAMPLES samples outside the fold → c = 0, the base estimator (rb for
     rb_cv, mc for cv_opt). With 3 other samples the old fitted λ was noise: rb_cv was 3.5–10.7×
     rb's variance at M = 4 on random toys, cv_opt up to 29× mc's.
  2. the fitted ĉ is shrunk by its own sampling variance: c = ĉ · max(0, 1 − se²/ĉ²), with se² the
     least-squares variance of the slope (residual variance / Σ (z − z̄)²). The cost of a fitted
     coefficient is E[(c − c*)²]·Var(Z), its gain c*²·Var(Z): a coefficient indistinguishable from 0
     is worth less than nothing, and 1 − se²/ĉ² estimates the optimal factor c*²/(c*² + se²).
  3. the result is clipped to the bounds of its pair (`BOUNDS`, derived there).
All three are functions of the other folds only, so unbiasedness is untouched.
"""

from __future__ import annotations

import torch

MIN_FIT_SAMPLES = 32  # samples outside a fold below which the coefficient is 0 (the base estimator)

# The interval each pair's coefficient is clipped to. Both contain 0 (the base estimator) and 1.
# cv_opt = U + α(r − 1), r = q(y)/p(y): Cov(U, r) = E_q[log p/q] − E_p[U]·E_p[r] = −(KL(p‖q) + KL(q‖p)),
#   so α* = (KL(p‖q) + KL(q‖p)) / χ²(q‖p) ≥ 0 always: a negative fit is noise, the lower bound is 0.
#   As q → p both KLs → χ²/2 and α* → 1 (k3). Var(α) ≤ Var(mc) exactly for α ∈ [0, 2α*], so the cap
#   2 = 2 · the local optimum keeps every clipped α no worse than mc whenever α* ≥ 1; large fits come
#   from samples that missed a rare string (the heavy tail of r), where the cap matters.
# rb_cv = C + λ(U − C): with d_t = u_t − KL_t (martingale differences, uncorrelated),
#   λ* = −Σ_{s>t} E[KL_s d_t] / Σ_t E[d_t²]: only the dependence of later steps' KL on earlier residuals
#   enters, with either sign (λ* = 0 for one step). No sign is implied, so the bounds are the segment
#   [0, 1] between rb and mc extended by its length on each side: the counterexample's λ* = 1.72
#   (Var 2.94 against mc 3.32, rb 5.07) stays reachable, and a value moves at most two residuals.
BOUNDS: dict[str, tuple[float, float]] = {"cv_opt": (0.0, 2.0), "rb_cv": (-1.0, 2.0)}

# Sufficient statistics per cell, last dimension: count, Σx, Σz, Σx², Σxz, Σz².
_N, _SX, _SZ, _SXX, _SXZ, _SZZ = range(6)


def fold_assignment(
    n: int, folds: int | None, groups: torch.Tensor | None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, int, torch.Tensor, int]:
    """(fold [n], K, group [n], G): every sample's fold, and its centring group (0..G−1; see module doc)."""
    if folds is not None and (isinstance(folds, bool) or int(folds) != folds or int(folds) < 2):
        raise ValueError(f"folds: expected an integer ≥ 2 (or None for leave-one-out), got {folds!r}")
    if groups is None:
        group, G = torch.zeros(n, dtype=torch.long, device=device), 1
    else:
        groups = torch.as_tensor(groups, device=device)
        if groups.shape != (n,) or groups.dtype.is_floating_point or groups.dtype == torch.bool:
            raise ValueError(
                f"groups: expected an integer tensor of shape [{n}] (one group id per sequence), "
                f"got {groups.dtype} of shape {tuple(groups.shape)}"
            )
        _, group, size = torch.unique(groups, return_inverse=True, return_counts=True)  # 0..G−1, sorted ids
        G = int(group.max()) + 1 if n else 1
    if G >= 2:  # folds of whole groups
        K = G if folds is None else min(int(folds), G)
        fold = group % K
        # Centring groups: a group of one sequence has no within-group spread, so those are centred
        # together (one response per prompt: the pairs are i.i.d. draws over prompts).
        single = size[group] == 1
        centre = torch.where(single, torch.zeros_like(group), group + 1)
        _, centre = torch.unique(centre, return_inverse=True)
        return fold, K, centre, int(centre.max()) + 1
    K = max(1, n if folds is None else min(int(folds), n))  # n = 1: one fold, nothing to fit on
    return torch.arange(n, device=device) % K, K, group, G


def _cell_sums(x: torch.Tensor, z: torch.Tensor, cell: torch.Tensor, cells: int) -> torch.Tensor:
    """[..., cells, 6] sufficient statistics of the samples in each cell (a cell holds one fold's
    samples of one group; its sums read nothing else)."""
    terms = torch.stack([torch.ones_like(x), x, z, x * x, x * z, z * z], dim=-1)  # [..., n, 6]
    out = terms.new_zeros((*x.shape[:-1], cells, 6))
    return out.index_add_(-2, cell, terms)


def coefficient_from_sums(sums: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """The safeguarded coefficient from per-group sums of the fitting samples.

    sums: [..., G, 6] (count, Σx, Σz, Σx², Σxz, Σz²) of the fitting samples in each group. Returns [...]:
    −Cxz/Czz of the pooled within-group moments, 0 below MIN_FIT_SAMPLES or when undefined, shrunk by
    its sampling variance and clipped to `bounds`.
    """
    n, sx, sz, sxx, sxz, szz = sums.movedim(-1, 0).contiguous()  # each [..., G], contiguous
    safe = n.clamp(min=1)
    pooled = (lambda v: v.squeeze(-1)) if sums.shape[-2] == 1 else (lambda v: v.sum(-1))
    cxz = pooled(sxz - sx * sz / safe)  # pooled within-group moments
    czz = pooled(szz - sz * sz / safe)
    cxx = pooled(sxx - sx * sx / safe)
    m = pooled(n)  # fitting samples
    dof = m - pooled((n > 0).to(n.dtype)) - 1  # one mean per non-empty group and the slope
    c_hat = -cxz / czz
    # Residual variance of x regressed on z, then the slope's variance.
    se2 = (cxx - cxz * cxz / czz).clamp(min=0) / dof.clamp(min=1) / czz
    shrunk = c_hat * (1 - se2 / (c_hat * c_hat)).clamp(min=0)
    # czz is a difference of raw moments: when every fitting z is the same it is rounding residue
    # (of order eps·Σz²), not 0; such a fit is refused. Σz² is the fitting samples' own.
    tiny = 64 * torch.finfo(czz.dtype).eps * pooled(szz)
    ok = (m >= MIN_FIT_SAMPLES) & (dof >= 1) & (czz > tiny) & torch.isfinite(shrunk)
    return torch.where(ok, shrunk, torch.zeros_like(shrunk)).clamp(*bounds)


def crossfit_coefficients(
    x: torch.Tensor,
    z: torch.Tensor,
    folds: int | None = None,
    *,
    groups: torch.Tensor | None = None,
    bounds: tuple[float, float] = BOUNDS["rb_cv"],
) -> torch.Tensor:
    """Per-sample coefficient c_i fitted on the folds other than sample i's (see module doc).

    Args: x, z: [..., n] float64 values (leading dimensions: independent batches sharing the fold
      layout). folds: number of folds K (None = leave-one-out, or leave-one-group-out with groups).
      groups: [n] integer group ids (e.g. prompt index), or None for one group. bounds: `BOUNDS[name]`.
    Returns: [..., n] float64 coefficients; the one of fold k is bit for bit a function of the other
      folds' values.
    """
    n = x.shape[-1]
    fold, K, group, G = fold_assignment(n, folds, groups, x.device)
    cell = group * K + fold
    sums = _cell_sums(x, z, cell, G * K).unflatten(-2, (G, K))  # [..., G, K, 6]
    # Exclusive prefix and suffix sums over the folds: fold k's complement without touching fold k.
    zero = torch.zeros_like(sums[..., :1, :])
    before = torch.cat([zero, sums[..., :-1, :].cumsum(-2)], dim=-2)
    after = torch.cat([sums[..., 1:, :].flip(-2).cumsum(-2).flip(-2), zero], dim=-2)
    other = (before + after).transpose(-3, -2)  # [..., K, G, 6]
    coef = coefficient_from_sums(other, bounds)  # [..., K]
    return coef[..., fold]


def jackknife_means(
    x: torch.Tensor,
    z: torch.Tensor,
    folds: int | None = None,
    *,
    groups: torch.Tensor | None = None,
    bounds: tuple[float, float] = BOUNDS["rb_cv"],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delete-a-fold jackknife replicates of the cross-fitted mean, refitting every coefficient.

    Returns (replicates [..., K], sizes [K]): replicate d is the mean of x + c z over the samples
    outside fold d, each fold j ≠ d with its coefficient fitted on the folds other than j and d; sizes
    are the folds' sample counts. The "other than j and d" sums are total − own − deleted (rounding in
    them only touches the standard error, never the estimate).
    """
    n = x.shape[-1]
    fold, K, group, G = fold_assignment(n, folds, groups, x.device)
    if K < 2:
        raise ValueError("jackknife: needs at least 2 folds (2 samples)")
    sums = _cell_sums(x, z, group * K + fold, G * K).unflatten(-2, (G, K))  # [..., G, K, 6]
    total = sums.sum(-2).unsqueeze(-3)  # [..., 1, G, 6]
    per_fold = sums.transpose(-3, -2)  # [..., K, G, 6]
    fold_x = per_fold[..., _SX].sum(-1)  # [..., K] Σx per fold
    fold_z = per_fold[..., _SZ].sum(-1)
    sizes = per_fold[..., _N].sum(-1)  # [..., K]
    keep = ~torch.eye(K, dtype=torch.bool, device=x.device)
    num = []
    step = max(1, (1 << 22) // (K * G * 6 * max(1, x[..., 0].numel())))  # deleted folds per chunk: bounded memory
    for d0 in range(0, K, step):
        d = slice(d0, min(K, d0 + step))
        # Fitting sums for (deleted d, target j): [..., D, K_j, G, 6].
        fit = total.unsqueeze(-4) - per_fold.unsqueeze(-4) - per_fold[..., d, :, :].unsqueeze(-3)
        coef = coefficient_from_sums(fit, bounds)  # [..., D, K_j]
        contrib = fold_x.unsqueeze(-2) + coef * fold_z.unsqueeze(-2)  # [..., D, K_j]
        num.append(torch.where(keep[d], contrib, torch.zeros_like(contrib)).sum(-1))
    den = sizes.sum(-1, keepdim=True) - sizes
    return torch.cat(num, dim=-1) / den, torch.bincount(fold, minlength=K)
