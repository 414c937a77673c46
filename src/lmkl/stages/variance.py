"""`lmkl variance target=<run>|exact`: the variance study of KL value estimators (paper §5.2).

target=<run> (e.g. rb_beta0.1_seed0): the trained policy results/P/train/<run>/model against the
reference results/P/assets/policy, on the first `variance.prompts` held-out prompts
(`lmkl.studies.variance`). Writes results/P/variance/<run>/:
  estimates.parquet  profile, policy, prompt, estimator, M, repetition, estimate (tidy)
  truth.csv          per prompt: ground-truth rb estimate over ground_truth_samples samples, stderr
  summary.csv        per estimator and M: std, frac_negative, max_abs, bias (± bias_stderr, bias_z), rmse
target=exact: exact bias and per-sample variance of every estimator on lmkl.exact toys, the
two-step counterexample included (`lmkl.studies.oracle`, rows study=oracle), and M·Var of the
cross-fitted estimators against their bases for M = 2 … 128 (rows study=crossfit_sweep)
→ results/P/variance/exact/oracle.csv.
The folder appears complete or not at all (atomic_dir).
"""

from __future__ import annotations

import logging

import torch

from lmkl.atomic import atomic_dir
from lmkl.stages import runner
from lmkl.stages.inputs import load_pair, read_test_prompts, stage_device
from lmkl.stages.outputs import log_summary, write_table
from lmkl.stages.paths import parse_run_name
from lmkl.stages.pipeline_config import VarianceConfig, profile_paths

log = logging.getLogger("lmkl")


def run_exact(cfg: VarianceConfig) -> None:
    import pandas as pd

    from lmkl.studies.oracle import crossfit_sweep, toy_pairs, value_oracle

    v = cfg.variance
    paths = profile_paths(cfg)
    toys = toy_pairs(v.oracle_toys, seed=v.seed)
    rows = value_oracle(toys, v.estimators, v.oracle_crossfit_m)
    if any(e in ("cv_opt", "rb_cv") for e in v.estimators):
        rows += crossfit_sweep(toys, seed=v.seed)
    df = pd.DataFrame(rows)
    df.insert(0, "profile", cfg.profile.name)
    with atomic_dir(paths.variance / "exact") as out:
        write_table(df, out / "oracle.csv")
    log.info("exact value oracle: %d rows → %s", len(df), paths.variance / "exact")


def run_policy(cfg: VarianceConfig) -> None:
    from lmkl.studies.variance import run_study, summarize_estimates

    v = cfg.variance
    paths = profile_paths(cfg)
    estimator, beta, seed = parse_run_name(cfg.target)
    pair = load_pair(paths.final_model(estimator, beta, seed), paths.policy, stage_device(cfg))
    prompts = read_test_prompts(paths, v.prompts)
    gen = torch.Generator(device=pair.p.device).manual_seed(v.seed)  # same seed for every policy
    log.info("variance study of %s: %d prompts × R=%d × M=%s", cfg.target, len(prompts), v.repetitions, v.sample_sizes)
    estimates, truth = run_study(
        pair, prompts, estimators=v.estimators, repetitions=v.repetitions, sizes=v.sample_sizes,
        truth_samples=v.ground_truth_samples, max_new_tokens=v.max_new_tokens, temperature=v.temperature,
        generator=gen, chunk=v.micro_batch,
    )
    summary = summarize_estimates(estimates, truth)
    for df in (estimates, truth, summary):
        df.insert(0, "policy", cfg.target)
        df.insert(0, "profile", cfg.profile.name)
    with atomic_dir(paths.variance / cfg.target) as out:
        write_table(estimates, out / "estimates.parquet")
        write_table(truth, out / "truth.csv")
        write_table(summary, out / "summary.csv")
    m = max(v.sample_sizes)
    at_m = summary[summary["M"] == m].set_index("estimator")["std"].to_dict()
    log.info("std at M=%d: %s", m, {k: round(x, 4) for k, x in at_m.items()})
    log_summary(
        cfg, paths, name=f"variance-{cfg.target}", job_type="variance",
        summary={f"std_M{m}/{k}": x for k, x in at_m.items()} | {"truth_kl": float(truth["truth"].mean())},
        table=summary,
    )


def body(cfg: VarianceConfig) -> None:
    with torch.no_grad():  # the study only samples and scores
        (run_exact if cfg.target == "exact" else run_policy)(cfg)


def main(overrides: list[str]) -> int:
    return runner.run("variance", overrides, VarianceConfig, body)
