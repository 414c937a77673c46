"""The W&B run of one training run, shared by `lmkl train` and `lmkl evaluate`.

One W&B run per training run (id kept in results/P/train/<run>/wandb_id.txt): train logs its config
and per-step metrics; evaluate resumes the same run by id and adds its reward and KL (every estimator,
with stderr and share of negative values) to the summary under eval/. The config has estimator, beta
and seed at its top level, and the runs of a profile's sweep share the group `<profile>-sweep`, so
W&B's runs table and a scatter of eval/reward against eval/kl_rb show the reward–KL front natively.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmkl import tracking
from lmkl.atomic import atomic_write_text
from lmkl.stages.config import to_dict
from lmkl.stages.paths import run_name


def enabled(cfg) -> bool:
    return tracking.enabled(cfg.wandb.enabled)


def run_init(cfg, run_dir: Path) -> dict[str, Any]:
    """start_run's arguments for the run of (cfg.estimator, cfg.beta, cfg.seed)."""
    name = run_name(cfg.estimator, cfg.beta, cfg.seed)
    return {
        "project": cfg.wandb.project, "name": f"{cfg.profile.name}/{name}", "group": f"{cfg.profile.name}-sweep",
        "job_type": "train", "config": to_dict(cfg), "dir": run_dir,
        "tags": [cfg.profile.name, cfg.estimator, cfg.train.gradient],
    }


def _id_file(run_dir: Path) -> Path:
    return Path(run_dir) / "wandb_id.txt"


def start_training_run(cfg, run_dir: Path):
    """The run's W&B run, resumed across invocations; None if W&B is off."""
    if not enabled(cfg):
        return None
    id_file = _id_file(run_dir)
    resume_id = id_file.read_text().strip() if id_file.is_file() else None
    run = tracking.start_run(resume_id=resume_id, **run_init(cfg, run_dir))
    if resume_id is None:
        atomic_write_text(id_file, run.id)
    return run


def add_evaluation(cfg, run_dir: Path, summary: dict[str, Any]) -> None:
    """Put `summary` (eval/... keys) into the training run's own W&B summary (a new run if it has none)."""
    if not enabled(cfg):
        return
    id_file = _id_file(run_dir)
    if id_file.is_file():
        tracking.update_summary(run_id=id_file.read_text().strip(), summary=summary, **run_init(cfg, run_dir))
        return
    run = start_training_run(cfg, run_dir)  # trained with W&B off: a run for the evaluation alone
    try:
        run.summary.update(summary)
    finally:
        run.finish()
