"""The train stage with train.engine=trl: TRL's RLOOTrainer with lmkl's KL term, started through accelerate.

    lmkl train profile=tiny estimator=rb beta=0.05 seed=0 train.engine=trl train.gradient=causal
    lmkl train ... train.engine=trl train.processes=4          # accelerate launch --num_processes 4

With train.processes = 1, or inside a process accelerate (or torchrun, or SLURM via `accelerate launch`)
already started, the run trains in this process (`lmkl.integrations.trl.run.train_rloo`, which uses
every process of the launch). With N > 1 the stage starts `accelerate launch --multi_gpu
--num_processes N -m lmkl.stages.train <the same overrides>` and waits; each process composes the same
config and trains its share. The run folder is the lmkl engine's: run_config.json, metrics.csv,
checkpoints/ (TRL's), model/ — evaluate, the studies and the figures read it unchanged.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from lmkl.stages.inputs import training_inputs
from lmkl.stages.pipeline_config import RunConfig, profile_paths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def launched() -> bool:
    """True inside a process a distributed launcher started (accelerate launch, torchrun)."""
    return "WORLD_SIZE" in os.environ


def train_with_trl(cfg: RunConfig, rc, run_dir: Path, fingerprint: dict, overrides) -> Path:
    from lmkl.rloo import RunConfigMismatch

    if cfg.train.processes > 1 and not launched():
        return _launch(cfg, run_dir, overrides)
    from lmkl.integrations.trl.run import train_rloo
    from lmkl.rewards import make_reward
    from lmkl.stages.run_tracking import start_training_run
    from lmkl.stages.train import log_done, step_logger

    paths = profile_paths(cfg)
    policy_dir, prompts = training_inputs(cfg)
    if cfg.model.dtype != "float32":
        raise StageError(f"model.dtype: train.engine=trl trains in float32 here, got {cfg.model.dtype!r}")
    try:
        reward = make_reward(cfg.reward.kind, paths.reward, batch_size=cfg.reward.batch_size, device=rc.device)
    except ValueError as e:
        raise StageError(str(e)) from e
    main_process = int(os.environ.get("RANK", "0")) == 0
    wb = start_training_run(cfg, run_dir) if main_process else None
    try:
        rows = train_rloo(
            policy_dir, reward, prompts, rc, run_dir, overwrite=cfg.train.overwrite,
            checkpoint_every=cfg.train.checkpoint_every, keep_checkpoints=cfg.train.keep_checkpoints,
            fingerprint=fingerprint, on_step=step_logger(rc.steps, wb),
        )  # fmt: skip
    except (RunConfigMismatch, ValueError, FloatingPointError) as e:
        raise StageError(str(e)) from e
    finally:
        if wb is not None:
            wb.finish()
    if main_process:
        log_done(run_dir, rows)
    return run_dir


def _launch(cfg: RunConfig, run_dir: Path, overrides) -> Path:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(cfg.train.processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "lmkl.stages.train", *overrides,
    ]  # fmt: skip
    log.info("train.engine=trl: %s", " ".join(cmd))
    done = subprocess.run(cmd)
    if done.returncode:
        raise StageError(f"accelerate launch with {cfg.train.processes} processes failed (exit {done.returncode})")
    return run_dir
