"""The variance study of KL value estimators (paper §5.2; protocol of paper-digest §5.2 and §8).

For one (policy p, reference q) pair and each prompt x:
  1. draw N = R · max(M) responses y ~ p(·|x) once and score them once (TokenStats [N, T]);
  2. for every estimator, repetition r and sample size M, the estimate is the estimator's mean over
     the first M samples of repetition r's block (`lmkl.studies.slicing`) — all estimators and all
     M see the same samples; the cross-fitted estimators (cv_opt, rb_cv) are fitted within each
     M-sample set only, as a user with M samples of one prompt would — so below 32 fitting samples
     (`lmkl.kl.crossfit.MIN_FIT_SAMPLES`) they are exactly mc and rb; fitting across prompts
     (`estimate(..., groups=)`, as `lmkl estimate` and evaluate do) is not what this study measures;
  3. the ground truth is the rb estimate over G further samples (rb is unbiased; its standard error
     is reported with it).
The estimate of estimator e from samples S is mean_{y∈S} e(y) — unbiased for KL(p(·|x) ‖ q(·|x))
for every estimator except k2 (and, on capped lengths, for the KL of the length-capped processes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import torch

from lmkl.kl import CROSSFITTED, TokenStats, estimate, summarize
from lmkl.studies.slicing import nested_slices


def sample_stats(
    pair, prompt: str, n: int, *, max_new_tokens: int, temperature: float, generator: torch.Generator, chunk: int
) -> TokenStats:
    """Draw n responses to one prompt from pair.p (in chunks of `chunk` rows) and score them: [n, T]."""
    from lmkl.models import sample_and_score

    return sample_and_score(pair, [prompt], n, max_new_tokens=max_new_tokens, temperature=temperature,
                            batch_size=chunk, generator=generator).stats


def _select(stats: TokenStats, idx: range) -> TokenStats:
    return TokenStats(*(f[idx.start : idx.stop] for f in stats))


def repetition_estimates(
    stats: TokenStats, estimators: Sequence[str], repetitions: int, sizes: Sequence[int]
) -> Iterator[dict]:
    """Rows {estimator, M, repetition, estimate} from stats [R·max(M), T] of one prompt."""
    need = repetitions * max(sizes)
    if stats.mask.shape[0] < need:
        raise ValueError(f"stats: expected at least R·max(M) = {need} sequences, got {stats.mask.shape[0]}")
    slices = nested_slices(repetitions, list(sizes))
    for name in estimators:
        per_seq = None if name in CROSSFITTED else estimate(stats, name).double()  # [N], computed once
        for r, m, idx in slices:
            if per_seq is not None:
                value = per_seq[idx.start : idx.stop].mean()
            else:  # cross-fitted within the M samples (M = 1: coefficient 0, the base estimator)
                value = estimate(_select(stats, idx), name).double().mean()
            yield {"estimator": name, "M": m, "repetition": r, "estimate": float(value)}


def ground_truth(stats: TokenStats) -> dict:
    """The rb estimate (unbiased, ≥ 0) over a large independent sample: {truth, truth_stderr, truth_n}."""
    est = summarize(estimate(stats, "rb"))
    return {"truth": est.mean, "truth_stderr": est.stderr, "truth_n": est.n}


def run_study(
    pair,
    prompts: Sequence[str],
    *,
    estimators: Sequence[str],
    repetitions: int,
    sizes: Sequence[int],
    truth_samples: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
    chunk: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study for one model pair: (estimates, truth) tables.

    estimates: one row per (prompt, estimator, M, repetition) with the estimate;
    truth: one row per prompt with the ground-truth rb estimate and its standard error.
    """
    rows, truth_rows = [], []
    n = repetitions * max(sizes)
    kw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "generator": generator, "chunk": chunk}
    for i, x in enumerate(prompts):
        stats = sample_stats(pair, x, n, **kw)
        rows += [{"prompt": i, **row} for row in repetition_estimates(stats, estimators, repetitions, sizes)]
        truth_rows.append({"prompt": i, "prompt_text": x, **ground_truth(sample_stats(pair, x, truth_samples, **kw))})
    return pd.DataFrame(rows), pd.DataFrame(truth_rows)


def summarize_estimates(estimates: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per (estimator, M): the spread of the estimates, pooled over prompts.

    std: mean over prompts of the standard deviation across repetitions (ddof = 1) — the paper's
    "standard deviation of the estimate"; frac_negative: share of all estimates below 0;
    max_abs: largest |estimate| (k3's explosions show here); bias: mean over prompts of
    (mean estimate − ground truth); truth_stderr: the standard error of that truth average;
    bias_stderr: the standard error of the bias itself, combining per prompt the estimates' own noise
    (std/√R: the R repetitions use disjoint samples) with the truth's, sqrt(Σ_p (std_p²/R_p +
    truth_se_p²))/P; bias_z = bias / bias_stderr (|z| ≳ 3 is a bias, not noise); rmse: root mean
    squared error against the truth.
    """
    df = estimates.merge(truth[["prompt", "truth", "truth_stderr"]], on="prompt")
    df["err"] = df["estimate"] - df["truth"]
    per_prompt = df.groupby(["estimator", "M", "prompt"]).agg(
        std=("estimate", "std"), mean=("estimate", "mean"), n=("estimate", "size"),
        truth=("truth", "first"), truth_se=("truth_stderr", "first"),
    )  # fmt: skip
    per_prompt["bias"] = per_prompt["mean"] - per_prompt["truth"]
    per_prompt["bias_var"] = per_prompt["std"] ** 2 / per_prompt["n"] + per_prompt["truth_se"] ** 2
    by = per_prompt.groupby(level=["estimator", "M"])
    root_sum_over_count = lambda s: float(s.sum() ** 0.5 / len(s))  # noqa: E731  sqrt(Σ var)/P
    out = pd.DataFrame(
        {
            "std": by["std"].mean(),
            "bias": by["bias"].mean(),
            "truth_stderr": by["truth_se"].apply(lambda s: root_sum_over_count(s**2)),
            "bias_stderr": by["bias_var"].apply(root_sum_over_count),
        }
    )
    out["bias_z"] = out["bias"] / out["bias_stderr"]
    g = df.groupby(["estimator", "M"])
    out["frac_negative"] = g["estimate"].apply(lambda s: float((s < 0).mean()))
    out["max_abs"] = g["estimate"].apply(lambda s: float(s.abs().max()))
    out["rmse"] = g["err"].apply(lambda s: float((s**2).mean() ** 0.5))
    out["n_estimates"] = g["estimate"].size()
    out["prompts"] = g["prompt"].nunique()
    out["repetitions"] = g["repetition"].nunique()
    return out.reset_index()


def variance_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's variance table from per-policy summaries: per (estimator, M), the std averaged over
    policies (and prompts), the share of negative estimates, the largest |estimate|, the mean bias
    against the rb ground truth with its combined standard error (policies independent) and z;
    n_policies says how many policies were pooled."""
    g = summary.groupby(["estimator", "M"])
    out = pd.DataFrame(
        {
            "std": g["std"].mean(),
            "frac_negative": (summary["frac_negative"] * summary["n_estimates"]).groupby([summary["estimator"], summary["M"]]).sum()
            / g["n_estimates"].sum(),
            "max_abs": g["max_abs"].max(),
            "bias": g["bias"].mean(),
            "bias_stderr": g["bias_stderr"].apply(lambda s: float((s**2).sum() ** 0.5 / len(s))),
            "n_policies": g["policy"].nunique(),
            "prompts": g["prompts"].max(),
            "repetitions": g["repetitions"].max(),
        }
    )
    out["bias_z"] = out["bias"] / out["bias_stderr"]
    return out.reset_index()
