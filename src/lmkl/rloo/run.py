"""A resumable training run in one folder: run_config.json, metrics.csv, checkpoints/, model/.

    check_run_dir(run_dir, fingerprint, overwrite=False)   # before any work: same config, or refuse
    rows = fit(trainer, run_dir, checkpoint_every=10)       # resume from the latest checkpoint, train
                                                            # to trainer.config.steps, save model/

Re-invoked with the same fingerprint the run resumes from its newest checkpoint (rows of metrics.csv
beyond it are recomputed, so the file always matches the weights); with a larger `steps` it goes on,
except under lr_schedule=linear, whose decay is planned for the run's `steps`: a changed length is
refused (RunConfigMismatch) rather than restarting the decay.
A different fingerprint is refused, or, with overwrite, the folder is emptied and the run starts fresh.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from lmkl.atomic import atomic_dir, atomic_write_json
from lmkl.rloo.checkpoints import checkpoint_dir, load_latest, save_checkpoint
from lmkl.rloo.metrics import read_metrics, write_metrics
from lmkl.rloo.trainer import NonFiniteError, RLOOTrainer

RUN_CONFIG = "run_config.json"


class RunConfigMismatch(ValueError):
    """The run folder holds a run of another configuration."""


class RunFolderInconsistent(RunConfigMismatch):
    """The run folder's files disagree (metric rows vs checkpoint) and cannot be reconciled."""


class TrainingDiverged(RuntimeError):
    """A NaN/inf appeared; the message names the step and the last good checkpoint."""


def _normalize(obj: dict) -> dict:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def check_run_dir(run_dir: str | Path, fingerprint: dict, *, overwrite: bool = False) -> None:
    """Make `run_dir` hold a run of `fingerprint`: refuse another config unless `overwrite`.

    fingerprint: every option that defines the run except the number of steps (RLOOConfig.fingerprint()
    plus the models, reward and prompts it was given).
    """
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG
    want = _normalize(fingerprint)
    if path.is_file():
        have = json.loads(path.read_text())
        if have != want:
            if not overwrite:
                diff = sorted(_diff(have, want))
                raise RunConfigMismatch(
                    f"{run_dir} holds a run with another configuration (differs in: {', '.join(diff)}); "
                    "only train.steps may change when resuming; pass train.overwrite=true to start afresh"
                )
            shutil.rmtree(run_dir)
    elif overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    atomic_write_json(path, want)


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key} ({x!r} -> {y!r})")
    return out


def fit(
    trainer: RLOOTrainer,
    run_dir: str | Path,
    *,
    checkpoint_every: int = 10,
    keep_checkpoints: int = 2,
    on_step: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train to `trainer.config.steps` updates, resuming from the newest checkpoint in `run_dir`.

    Writes metrics.csv after every update, a checkpoint every `checkpoint_every` updates and at the
    end, and the final policy (with its tokenizer, HF format) to model/. Returns all metric rows.
    Raises TrainingDiverged on a NaN/inf reward, loss or gradient (no checkpoint is written after it).
    """
    run_dir = Path(run_dir)
    steps = trainer.config.steps
    metrics_path = run_dir / "metrics.csv"
    state = load_latest(run_dir, map_location=trainer.device)
    rows: list[dict] = []
    if state is not None:
        trainer.load_state_dict(state)
        # The checkpoint carries the metric rows up to its step, so a metrics.csv that was deleted
        # (Snakemake removes the declared outputs of a job it re-runs) or cut short is rebuilt.
        rows = [dict(r) for r in state.get("metrics", [])]
        if len(rows) != trainer.step_count:  # a checkpoint written before rows were stored in it
            rows = [r for r in read_metrics(metrics_path) if r["step"] <= trainer.step_count]
        if len(rows) != trainer.step_count:
            raise RunFolderInconsistent(
                f"{metrics_path}: {len(rows)} metric rows for the checkpoint at step {trainer.step_count}, "
                "and the checkpoint does not carry them; pass train.overwrite=true to start afresh"
            )
        write_metrics(metrics_path, rows)
    planned = state.get("lr_schedule_steps") if state is not None else None
    if trainer.config.lr_schedule == "linear" and planned is not None and planned != steps:
        # The decay is tied to the planned last step: extending 500 → 1000 would jump the lr from ~0
        # back up to half its peak; shortening would cut the decay. Refused rather than made up.
        raise RunConfigMismatch(
            f"{run_dir}: train.steps changed from {planned} to {steps}, but with lr_schedule=linear the "
            f"learning rate decays to 0 at step {planned} (the run is at step {trainer.step_count}); a "
            f"different length would restart or cut that decay. Keep train.steps={planned}, pass "
            f"train.overwrite=true to train {steps} steps afresh, or use lr_schedule=constant"
        )
    if trainer.step_count > steps:
        raise RunConfigMismatch(
            f"{run_dir} already holds {trainer.step_count} updates, more than steps = {steps}; "
            "pass train.overwrite=true to train a shorter run afresh"
        )
    model_dir = run_dir / "model"
    if trainer.step_count == steps and model_dir.is_dir() and rows:
        return rows  # complete
    last_good = trainer.step_count
    while trainer.step_count < steps:
        try:
            row = trainer.step()
        except NonFiniteError as e:
            where = f"step {last_good} in {checkpoint_dir(run_dir)}" if last_good else "none (no update finished)"
            raise TrainingDiverged(f"{e}: training stopped; last good checkpoint: {where}") from e
        rows.append(row)
        write_metrics(metrics_path, rows)
        if on_step is not None:
            on_step(row)
        if trainer.step_count % checkpoint_every == 0 or trainer.step_count == steps:
            save_checkpoint(run_dir, {**trainer.state_dict(), "metrics": list(rows)}, keep=keep_checkpoints)
            last_good = trainer.step_count
    save_policy(trainer, model_dir)
    return rows


def save_policy(trainer: RLOOTrainer, directory: str | Path) -> Path:
    """The current policy and its tokenizer in HF format, written atomically."""
    with atomic_dir(directory) as tmp:
        trainer.policy.save_pretrained(tmp)
        trainer.pair.tokenizer.save_pretrained(tmp)
    return Path(directory)
