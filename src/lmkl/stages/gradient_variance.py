"""`lmkl gradient_variance target=reference|<run>|exact`: variance of the ∇θ KL estimates (beyond the paper).

target=<run>: the trained policy p_θ = results/P/train/<run>/model against the reference q;
target=reference: p_θ = a copy of the reference itself. There p = q, so KL = 0 and every form's
estimate is exactly 0 — a check of the machinery (and of the forms' detach rules) rather than a
measurement; the interesting point is the trained policy.
For each form of `gradient_variance.forms`, `repetitions` independent estimates from M samples per
prompt (`lmkl.studies.gradients`); θ restricted to `gradient_variance.parameters` (regexes on
parameter names; the tiny profile uses its last transformer block to keep the study to seconds).
Writes results/P/gradient_variance/<target>/{repetitions.parquet, summary.csv}.
target=exact: exact bias and total variance of a one-sample estimate of every form on lmkl.exact
toys (the counterexample included) → results/P/gradient_variance/exact/oracle.csv.
"""

from __future__ import annotations

import logging

import torch

from lmkl.atomic import atomic_dir
from lmkl.stages import runner
from lmkl.stages.inputs import load_pair, read_test_prompts, stage_device
from lmkl.stages.outputs import log_summary, write_table
from lmkl.stages.paths import parse_run_name
from lmkl.stages.pipeline_config import GradientVarianceConfig, profile_paths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def run_exact(cfg: GradientVarianceConfig) -> None:
    import pandas as pd

    from lmkl.studies.oracle import gradient_oracle, toy_pairs

    g = cfg.gradient_variance
    paths = profile_paths(cfg)
    df = pd.DataFrame(gradient_oracle(toy_pairs(g.exact_toys, seed=g.seed), g.forms))
    df.insert(0, "profile", cfg.profile.name)
    with atomic_dir(paths.gradient_variance / "exact") as out:
        write_table(df, out / "oracle.csv")
    log.info("exact gradient oracle: %d rows → %s", len(df), paths.gradient_variance / "exact")


def run_model(cfg: GradientVarianceConfig) -> None:
    from lmkl.studies.gradients import run_gradient_study

    g = cfg.gradient_variance
    paths = profile_paths(cfg)
    if cfg.target == "reference":
        policy = paths.policy
    else:
        policy = paths.final_model(*parse_run_name(cfg.target))
    pair = load_pair(policy, paths.policy, stage_device(cfg))
    prompts = read_test_prompts(paths, g.prompts)
    gen = torch.Generator(device=pair.p.device).manual_seed(g.seed)
    try:
        reps, summary = run_gradient_study(
            pair, prompts, forms=g.forms, sizes=g.sample_sizes, repetitions=g.repetitions, patterns=g.parameters,
            max_new_tokens=g.max_new_tokens, temperature=g.temperature, generator=gen,
        )
    except ValueError as e:  # e.g. no parameter matches gradient_variance.parameters
        raise StageError(str(e)) from e
    for df in (reps, summary):
        df.insert(0, "point", cfg.target)
        df.insert(0, "profile", cfg.profile.name)
    with atomic_dir(paths.gradient_variance / cfg.target) as out:
        write_table(reps, out / "repetitions.parquet")
        write_table(summary, out / "summary.csv")
    m = max(g.sample_sizes)
    at_m = summary[summary["M"] == m].set_index("form")["total_variance"].to_dict()
    log.info("total gradient variance at M=%d over %d parameters: %s", m, int(summary["n_params"].iloc[0]), at_m)
    log_summary(
        cfg, paths, name=f"gradient_variance-{cfg.target}", job_type="gradient_variance",
        summary={f"total_variance_M{m}/{k}": v for k, v in at_m.items()}, table=summary,
    )


def body(cfg: GradientVarianceConfig) -> None:
    (run_exact if cfg.target == "exact" else run_model)(cfg)


def main(overrides: list[str]) -> int:
    return runner.run("gradient_variance", overrides, GradientVarianceConfig, body)
