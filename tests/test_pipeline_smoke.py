"""End to end, as a user on a compute node without network: `snakemake --cores 2 --config profile=paper
scale=smoke` with HF_HOME at a hub cache holding the paper's three repositories under their real ids
(the stand-in of tests/hub_standin.py: tiny random weights) and HF_HUB_OFFLINE=1. The whole DAG runs
— download from the cache, RLOO with mc and rb, evaluation, both studies, aggregate, figures — and
all five figures come out. Budget: ≤ 10 minutes on 2 CPU cores (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
FIGURES = ("variance", "training_curves", "pareto", "gradient_variance", "oracle")


@pytest.mark.slow
def test_paper_profile_at_smoke_scale_from_the_hub_cache_offline(standin_hub, tmp_path):
    env = {**os.environ, "HF_HOME": str(standin_hub), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    env.pop("HF_HUB_CACHE", None)  # the cache must be found through HF_HOME, as `hf download` leaves it
    cmd = [str(SNAKEMAKE), "--cores", "2", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--config", "profile=paper", "scale=smoke"]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)  # a hang guard
    wall = time.monotonic() - start
    log = proc.stdout + proc.stderr
    print(f"\n$ {' '.join(cmd[1:])}\nwall time {wall:.0f} s\n{log[-3000:]}")  # shown by pytest -rA / -s
    assert proc.returncode == 0, log[-6000:]
    assert "steps (100%) done" in log
    results, figs = tmp_path / "results" / "smoke" / "paper", tmp_path / "figures" / "smoke" / "paper"
    for name in FIGURES:
        assert (figs / f"{name}.png").stat().st_size > 1000 and (figs / f"{name}.md").is_file(), name
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert sorted(runs["run"]) == ["mc_beta0.1_seed0", "rb_beta0.1_seed0"]
    metrics = pd.read_csv(results / "train" / "rb_beta0.1_seed0" / "metrics.csv")
    assert metrics["step"].tolist() == [1, 2, 3]
    # the assets came from the hub cache (nothing else could serve them offline)
    assert (results / "assets" / "reward").is_dir() and (results / "assets" / "prompts" / "test.jsonl").stat().st_size > 0
    assert not (tmp_path / "results" / "paper").exists()  # a smoke run never touches the full profile's folders
