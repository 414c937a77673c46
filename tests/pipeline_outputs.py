"""Synthetic outputs of the train/evaluate/variance/gradient stages with known numbers, so that the
aggregate and figures stages can be tested in seconds without training (helpers, not tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lmkl.stages.paths import ProfilePaths, run_name

ESTIMATORS = ["mc", "rb"]
BETAS = [0.05, 0.2]
SEEDS = [0, 1]
STEPS = 5


def final_point(estimator: str, beta: float, seed: int) -> tuple[float, float]:
    """(eval KL, eval reward): rb runs dominate mc runs at equal β, so the front is known."""
    kl = 1.0 / beta * (1.3 if estimator == "mc" else 1.0) + 0.01 * seed
    reward = 1.0 - 0.1 / kl - (0.05 if estimator == "mc" else 0.0)
    return kl, reward


def write_profile(root: Path, profile: str = "tiny") -> ProfilePaths:
    """Every input the aggregate stage reads, under root/<profile>/, for the sweep ESTIMATORS × BETAS × SEEDS."""
    paths = ProfilePaths(profile, root)
    rng = np.random.default_rng(0)
    grad_run = run_name("rb", min(BETAS), SEEDS[0])
    for e in ESTIMATORS:
        for b in BETAS:
            for s in SEEDS:
                name = run_name(e, b, s)
                d = paths.run_dir(e, b, s)
                d.mkdir(parents=True, exist_ok=True)
                kl, reward = final_point(e, b, s)
                steps = np.arange(1, STEPS + 1)
                pd.DataFrame({
                    "step": steps, "reward": reward * steps / STEPS, "reward_std": 0.1, "kl_mc": kl * steps / STEPS,
                    "kl_mc_stderr": 0.1, "kl_rb": kl * steps / STEPS, "kl_rb_stderr": 0.01,
                }).to_csv(d / "metrics.csv", index=False)
                (d / "eval.json").write_text(json.dumps(
                    {"reward": reward, "reward_stderr": 0.01, "kl": {"mc": kl + 0.1, "rb": kl}, "kl_stderr": {"mc": 0.3, "rb": 0.05},
                     "kl_frac_negative": {"mc": 0.25, "rb": 0.0}}
                ))
                v = paths.variance / name
                v.mkdir(parents=True, exist_ok=True)
                rows = []
                for est, sd in (("mc", 1.0), ("rb", 0.2), ("k3", 0.8)):
                    for m in (1, 2, 4):
                        for r in range(4):
                            rows.append({"profile": profile, "policy": name, "prompt": 0, "estimator": est, "M": m,
                                         "repetition": r, "estimate": kl + sd / np.sqrt(m) * rng.standard_normal()})
                est_df = pd.DataFrame(rows)
                est_df.to_parquet(v / "estimates.parquet", index=False)
                truth = pd.DataFrame([{"profile": profile, "policy": name, "prompt": 0, "prompt_text": "x", "truth": kl,
                                       "truth_stderr": 0.01, "truth_n": 64}])
                truth.to_csv(v / "truth.csv", index=False)
                from lmkl.studies.variance import summarize_estimates

                summ = summarize_estimates(est_df.drop(columns=["profile", "policy"]), truth[["prompt", "truth", "truth_stderr"]])
                summ.insert(0, "policy", name)
                summ.insert(0, "profile", profile)
                summ.to_csv(v / "summary.csv", index=False)
    (paths.variance / "exact").mkdir(parents=True, exist_ok=True)
    from lmkl.studies.oracle import crossfit_sweep, gradient_oracle, toy_pairs, value_oracle

    toys = toy_pairs(2)
    rows = value_oracle(toys, ["mc", "rb", "k3", "rb_cv"], 2) + crossfit_sweep(toys, (2, 40), batches=300)
    pd.DataFrame(rows).to_csv(paths.variance / "exact" / "oracle.csv", index=False)
    for point, scale in (("reference", 0.0), (grad_run, 1.0)):
        g = paths.gradient_variance / point
        g.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([
            {"profile": profile, "point": point, "form": f, "M": m, "total_variance": scale * base / m, "mean_norm": scale,
             "dist_to_unbiased": float("nan"), "n_params": 100, "repetitions": 4}
            for f, base in (("mc_seq", 10.0), ("rb_causal", 1.0), ("k3_loss", 0.5)) for m in (1, 4)
        ]).to_csv(g / "summary.csv", index=False)
        pd.DataFrame([
            {"profile": profile, "point": point, "form": f, "M": m, "repetition": r, "sq_norm": scale * (1 + base / m * (r % 2) * 2)}
            for f, base in (("mc_seq", 10.0), ("rb_causal", 1.0), ("k3_loss", 0.5)) for m in (1, 4) for r in range(4)
        ]).to_parquet(g / "repetitions.parquet", index=False)
    (paths.gradient_variance / "exact").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(gradient_oracle(toys, ["mc_seq", "rb_causal", "k3_loss"])).to_csv(
        paths.gradient_variance / "exact" / "oracle.csv", index=False)
    return paths


SWEEP_OVERRIDES = [
    f"sweep.estimators=[{','.join(ESTIMATORS)}]", f"sweep.betas=[{','.join(map(str, BETAS))}]",
    f"sweep.seeds=[{','.join(map(str, SEEDS))}]",
]
