"""`lmkl aggregate`: every output of a profile's sweep → tidy tables in results/P/tables/.

Reads (paths from ProfilePaths; every one must exist — Snakemake runs this last):
  train/<run>/metrics.csv and eval.json for each run of the sweep, variance/<run>/*, variance/exact,
  gradient_variance/{reference,<policy run>,exact}.
Writes (CSV, parquet for the large per-estimate table), each atomically:
  training.csv            every metrics row + run, estimator, beta, seed
  runs.csv                one row per run: final eval reward and KL (every estimator, with stderr and the
                          share of negative per-sequence values, kl_frac_negative_<estimator>), on_front
  pareto_share.csv        per training estimator: front points and share of the front
  variance.parquet        every estimate (profile, policy, prompt, estimator, M, repetition, estimate)
  variance_summary.csv    per policy, estimator, M: std, frac_negative, max_abs, bias, rmse
  variance_table.csv      per estimator, M, pooled over policies (the paper's variance table)
  variance_truth.csv      ground-truth rb KL per policy and prompt
  gradient_variance.csv   per point, form, M: total variance of the ∇KL estimate
  gradient_repetitions.parquet  per point, form, M, repetition: ‖ĝ_r‖² (the claims report resamples them)
  oracle_values.csv, oracle_gradients.csv   the exact studies on lmkl.exact toys
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from lmkl.stages import runner
from lmkl.stages.inputs import require
from lmkl.stages.outputs import write_table
from lmkl.stages.paths import TABLES
from lmkl.stages.pipeline_config import PipelineConfig, default_gradient_run, profile_paths, sweep_runs

log = logging.getLogger("lmkl")


def training_tables(cfg, paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training curves of every run, final evaluation of every run)."""
    curves, finals = [], []
    for name, e, b, s in sweep_runs(cfg):
        df = pd.read_csv(require(paths.metrics_csv(e, b, s), f"metrics of run {name}"))
        curves.append(df.assign(run=name, estimator=e, beta=b, seed=s))
        ev = json.loads(require(paths.eval_json(e, b, s), f"evaluation of run {name}").read_text())
        row = {"run": name, "estimator": e, "beta": b, "seed": s, "reward": ev["reward"], "reward_stderr": ev.get("reward_stderr")}
        row |= {f"kl_{k}": v for k, v in ev.get("kl", {}).items()}
        row |= {f"kl_{k}_stderr": v for k, v in ev.get("kl_stderr", {}).items()}
        row |= {f"kl_frac_negative_{k}": v for k, v in ev.get("kl_frac_negative", {}).items()}
        finals.append(row)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(finals)


def pareto_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs with `on_front` (eval reward vs eval rb KL), and the share of the front per estimator."""
    from lmkl.studies.pareto import front_share, pareto_front

    if "kl_rb" not in runs:
        raise runner.StageError("eval.json has no rb KL estimate (kl.rb): the Pareto x-axis is the eval rb KL")
    runs = runs.assign(on_front=pareto_front(runs["kl_rb"], runs["reward"]))
    share = front_share(runs["estimator"], runs["on_front"])
    counts = runs[runs["on_front"]].groupby("estimator").size()
    table = pd.DataFrame(
        [{"estimator": e, "front_points": int(counts.get(e, 0)), "runs": int((runs["estimator"] == e).sum()), "share": s}
         for e, s in share.items()]
    )
    return runs, table


def variance_tables(cfg, paths) -> dict[str, pd.DataFrame]:
    from lmkl.studies.variance import variance_table

    est, summ, truth = [], [], []
    for name, *_ in sweep_runs(cfg):
        d = paths.variance / name
        est.append(pd.read_parquet(require(d / "estimates.parquet", f"variance study of {name}")))
        summ.append(pd.read_csv(require(d / "summary.csv", f"variance summary of {name}")))
        truth.append(pd.read_csv(require(d / "truth.csv", f"variance ground truth of {name}")))
    summary = pd.concat(summ, ignore_index=True)
    return {
        "variance.parquet": pd.concat(est, ignore_index=True),
        "variance_summary.csv": summary,
        "variance_table.csv": variance_table(summary),
        "variance_truth.csv": pd.concat(truth, ignore_index=True),
        "oracle_values.csv": pd.read_csv(require(paths.variance / "exact" / "oracle.csv", "exact value oracle")),
    }


def gradient_tables(cfg, paths) -> dict[str, pd.DataFrame]:
    points = ["reference", default_gradient_run(cfg)]
    summ = [pd.read_csv(require(paths.gradient_variance / p / "summary.csv", f"gradient study at {p}")) for p in points]
    reps = [pd.read_parquet(require(paths.gradient_variance / p / "repetitions.parquet", f"gradient study at {p}"))
            for p in points]
    return {
        "gradient_variance.csv": pd.concat(summ, ignore_index=True),
        "gradient_repetitions.parquet": pd.concat(reps, ignore_index=True),
        "oracle_gradients.csv": pd.read_csv(require(paths.gradient_variance / "exact" / "oracle.csv", "exact gradient oracle")),
    }


def body(cfg: PipelineConfig) -> None:
    paths = profile_paths(cfg)
    curves, finals = training_tables(cfg, paths)
    runs, share = pareto_tables(finals)
    tables = {"training.csv": curves, "runs.csv": runs, "pareto_share.csv": share}
    tables |= variance_tables(cfg, paths) | gradient_tables(cfg, paths)
    if sorted(tables) != sorted(TABLES):  # the Snakefile declares TABLES as this stage's outputs
        raise runner.StageError(f"aggregate: made tables {sorted(tables)}, declared {sorted(TABLES)} (lmkl.stages.paths)")
    for name, df in tables.items():
        write_table(df, paths.tables / name)
    log.info("aggregate: %d tables → %s; Pareto front shares %s", len(tables), paths.tables,
             dict(zip(share["estimator"], share["share"].round(3))))


def main(overrides: list[str]) -> int:
    return runner.run("aggregate", overrides, PipelineConfig, body)
