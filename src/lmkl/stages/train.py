"""`lmkl train profile=P estimator=E beta=B seed=S [train.steps=N ...]`: one RLOO run (paper §5.3).

Policy and reference both start from results/P/assets/policy; the reward is the profile's
(`lmkl.rewards.make_reward`), prompts results/P/assets/prompts/train.jsonl. Writes
results/P/train/<E>_beta<B>_seed<S>/ (ProfilePaths.run_dir):
  run_config.json   what defines the run (all options but train.steps)
  metrics.csv       one row per update (lmkl.rloo.metrics.COLUMNS), rewritten atomically
  checkpoints/      step_NNNNNN.pt: weights, AdamW, generators, prompt cursor (atomic)
  model/            the final policy with its tokenizer (HF format, atomic)
Re-invoked with the same options it resumes from the last checkpoint; with a larger train.steps it
continues; any other change is refused unless train.overwrite=true.

train.engine=trl trains the same run with TRL's RLOOTrainer and lmkl's KL term instead
(lmkl.stages.train_trl): the same files, checkpoints/ holding TRL's checkpoint folders.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lmkl.stages import runner
from lmkl.stages.config import to_dict
from lmkl.stages.inputs import load_pair_and_reward, require_assets, stage_device, training_inputs
from lmkl.stages.pipeline_config import RunConfig, profile_paths
from lmkl.stages.run_tracking import start_training_run
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def rloo_config(cfg: RunConfig):
    from lmkl.rloo import RLOOConfig

    return RLOOConfig(
        estimator=cfg.estimator, beta=cfg.beta, seed=cfg.seed, device=stage_device(cfg),
        **cfg.train.rloo_options(),
    )


def fingerprint(cfg: RunConfig, rc) -> dict:
    """Everything that makes two invocations the same run, train.steps excepted."""
    return {
        "rloo": rc.fingerprint(),
        "profile": cfg.profile.name,
        "model": to_dict(cfg.model),
        "reward": to_dict(cfg.reward),
        "max_train_prompts": cfg.train.max_train_prompts,
        # Only a non-default engine enters, so the folders of lmkl-engine runs keep their fingerprint.
        **({"engine": cfg.train.engine} if cfg.train.engine != "lmkl" else {}),
    }


def load_inputs(cfg: RunConfig, device: str):
    """(ModelPair(policy, reference), reward function, training prompts) from the profile's assets."""
    policy_dir, prompts = training_inputs(cfg)
    pair, reward = load_pair_and_reward(cfg, policy_dir, device)  # the policy starts as the reference
    return pair, reward, prompts


def train(cfg: RunConfig, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    from lmkl.rloo import RLOOTrainer, RunConfigMismatch, TrainingDiverged, check_run_dir, fit

    paths = profile_paths(cfg)
    # Before anything is written: the assets must match the manifest's checksums.
    require_assets(paths, "policy", "prompts", *(["reward"] if cfg.reward.kind == "classifier" else []))
    run_dir = paths.run_dir(cfg.estimator, cfg.beta, cfg.seed)
    rc = rloo_config(cfg)
    if cfg.train.engine == "trl":
        from lmkl.stages.train_trl import train_with_trl

        return train_with_trl(cfg, rc, run_dir, fingerprint(cfg, rc), overrides)
    try:  # before any work: the folder holds this run, or nothing, or (overwrite) is emptied
        check_run_dir(run_dir, fingerprint(cfg, rc), overwrite=cfg.train.overwrite)
    except RunConfigMismatch as e:
        raise StageError(str(e)) from e
    pair, reward, prompts = load_inputs(cfg, rc.device)
    try:
        trainer = RLOOTrainer(pair, reward, prompts, rc)
    except ValueError as e:
        raise StageError(str(e)) from e
    wb = start_training_run(cfg, run_dir)
    on_step = step_logger(rc.steps, wb)

    try:
        rows = fit(trainer, run_dir, checkpoint_every=cfg.train.checkpoint_every,
                   keep_checkpoints=cfg.train.keep_checkpoints, on_step=on_step)
    except (TrainingDiverged, RunConfigMismatch) as e:
        raise StageError(str(e)) from e
    finally:
        if wb is not None:
            wb.finish()
    log_done(run_dir, rows)
    return run_dir


def step_logger(steps: int, wb):
    """on_step callback: one log line per update and, when tracking, the row to W&B."""

    def on_step(row: dict) -> None:
        log.info(
            "step %d/%d reward %.4f kl_rb %.4f kl_mc %.4f (%.2fs)",
            row["step"], steps, row["reward"], row["kl_rb"], row["kl_mc"], row["seconds"],
        )
        if wb is not None:
            wb.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=int(row["step"]))

    return on_step


def log_done(run_dir: Path, rows: list[dict]) -> None:
    last = rows[-1]
    log.info("%s: %d steps, final reward %.4f, kl_rb %.4f → %s", run_dir.name, len(rows), last["reward"], last["kl_rb"], run_dir)


def main(overrides: list[str]) -> int:
    return runner.run("train", overrides, RunConfig, lambda cfg: train(cfg, overrides))


if __name__ == "__main__":  # `accelerate launch -m lmkl.stages.train ...` (train.engine=trl, several processes)
    sys.exit(main(sys.argv[1:]))
