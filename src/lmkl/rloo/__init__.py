"""RLOO with a KL penalty of a chosen estimator (mc | rb) and gradient form (paper | causal | reward).

    cfg = RLOOConfig(estimator="rb", gradient="causal", beta=0.05, steps=100)
    trainer = RLOOTrainer(ModelPair(policy, ref, tokenizer), reward_fn, prompts, cfg)
    check_run_dir(run_dir, {"rloo": cfg.fingerprint(), ...})
    rows = fit(trainer, run_dir)                         # resumable; metrics.csv, checkpoints/, model/

Modules: config (RLOOOptions, RLOOConfig and the option tables), pairing (micro-batches and baseline groups,
per-prompt or the authors' original index logic), losses (leave-one-out baseline, PPO-clip, the
three gradient forms: pure functions), trainer (rollout + PPO epochs), metrics (metrics.csv),
checkpoints, run (resume / refuse / fit). All KL math comes from lmkl.kl.
"""

from lmkl.rloo.config import GRADIENTS, PAIRINGS, RLOOConfig, RLOOOptions
from lmkl.rloo.losses import LossParts, loo_baseline, ppo_clip, rloo_losses
from lmkl.rloo.metrics import COLUMNS, read_metrics, write_metrics
from lmkl.rloo.pairing import MicroBatch, epoch_schedule, original_schedule, per_prompt_schedule
from lmkl.rloo.run import RunConfigMismatch, TrainingDiverged, check_run_dir, fit, save_policy
from lmkl.rloo.trainer import Batch, NonFiniteError, RLOOTrainer

__all__ = [
    "COLUMNS",
    "GRADIENTS",
    "PAIRINGS",
    "Batch",
    "LossParts",
    "MicroBatch",
    "NonFiniteError",
    "RLOOConfig",
    "RLOOOptions",
    "RLOOTrainer",
    "RunConfigMismatch",
    "TrainingDiverged",
    "check_run_dir",
    "epoch_schedule",
    "fit",
    "loo_baseline",
    "original_schedule",
    "per_prompt_schedule",
    "ppo_clip",
    "read_metrics",
    "rloo_losses",
    "save_policy",
    "write_metrics",
]
