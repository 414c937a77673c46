"""An lmkl RLOO run on TRL's RLOOTrainer with lmkl's KL term, in lmkl's run-folder layout.

    rows = train_rloo(policy_dir, reward_fn, prompts, RLOOConfig(estimator="rb", gradient="causal", ...),
                      run_dir, checkpoint_every=10)

The run folder is the one `lmkl.rloo.run.fit` writes — run_config.json, metrics.csv (one row per update,
`lmkl.rloo.metrics.COLUMNS`), checkpoints/, model/ — so evaluation and the studies read it unchanged;
checkpoints/ holds TRL's (HF Trainer) checkpoint folders, each with the metric rows up to it, and a
re-invocation resumes from the newest. Under `accelerate launch` every process calls this function;
the main process writes the files.

What maps to what (our options → TRL's): k → num_generations; num_prompts × k → the generation batch;
micro_batch_size → per_device_train_batch_size; num_ppo_epochs → num_iterations (one update = that
many optimizer steps per mini-batch); cliprange → epsilon; estimator mc | rb → kl_gradient mc_causal |
rb_causal. The penalty is β · kl_surrogate in the loss (gradient=causal of lmkl.rloo); TRL's RLOO
uses per-prompt leave-one-out baselines (baseline_pairing=per_prompt) and a sequence-level PPO ratio.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback

from lmkl.atomic import atomic_dir, atomic_write_json
from lmkl.kl import summarize
from lmkl.rloo.config import RLOOConfig
from lmkl.rloo.metrics import write_metrics
from lmkl.rloo.run import RunConfigMismatch, check_run_dir

FORMS = {"mc": "mc_causal", "rb": "rb_causal"}  # the trained estimator → the surrogate in the loss
ROWS_FILE = "lmkl_metrics.json"  # the metric rows up to a checkpoint, inside its folder


def check_supported(rc: RLOOConfig) -> None:
    """Raise ValueError naming the option TRL's RLOOTrainer with lmkl's term cannot reproduce."""
    if rc.gradient != "causal":
        raise ValueError(
            f"gradient: the trl engine trains β·kl_surrogate in the loss, i.e. gradient=causal; got {rc.gradient!r}"
        )
    if rc.baseline_pairing != "per_prompt":
        raise ValueError(f"baseline_pairing: TRL's RLOO groups by prompt (per_prompt); got {rc.baseline_pairing!r}")


def trl_args(rc: RLOOConfig, output_dir: str | Path, *, processes: int, checkpoint_every: int, keep_checkpoints: int):
    """TRL's RLOOConfig for `rc` on `processes` processes (each runs micro-batches of rc.micro_batch_size)."""
    from trl import RLOOConfig as TRLConfig

    check_supported(rc)
    mini = rc.batch_size // rc.num_mini_batches  # sequences per optimizer step
    if mini % (rc.micro_batch_size * processes):
        raise ValueError(
            f"micro_batch_size: {processes} process(es) × micro-batches of {rc.micro_batch_size} must divide the "
            f"mini-batch of {mini} sequences"
        )
    accumulation = mini // (rc.micro_batch_size * processes)
    per_update = rc.num_ppo_epochs * rc.num_mini_batches  # optimizer steps per update
    return TRLConfig(
        output_dir=str(output_dir), per_device_train_batch_size=rc.micro_batch_size,
        gradient_accumulation_steps=accumulation, steps_per_generation=accumulation * rc.num_mini_batches,
        num_generations=rc.k, num_iterations=rc.num_ppo_epochs, max_steps=rc.steps * per_update,
        max_completion_length=rc.max_new_tokens, temperature=rc.temperature, epsilon=rc.cliprange,
        beta=rc.beta, learning_rate=rc.lr, lr_scheduler_type=rc.lr_schedule, weight_decay=rc.weight_decay,
        adam_epsilon=rc.adam_eps, max_grad_norm=rc.max_grad_norm if rc.max_grad_norm is not None else 1e30,
        seed=rc.seed, data_seed=rc.seed, use_cpu=rc.device == "cpu", bf16=False, gradient_checkpointing=False,
        disable_dropout=True, logging_steps=1, report_to=[], save_strategy="steps",
        save_steps=checkpoint_every * per_update, save_total_limit=keep_checkpoints, save_only_model=False,
    )  # fmt: skip


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    found = [p for p in checkpoints.glob("checkpoint-*") if (p / ROWS_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def train_rloo(
    policy_dir: str | Path,
    reward_fn: Callable[[list[str]], Sequence[float] | torch.Tensor],
    prompts: Sequence[str],
    rloo_config: RLOOConfig,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    checkpoint_every: int = 10,
    keep_checkpoints: int = 2,
    fingerprint: dict | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train `rloo_config.steps` updates of TRL's RLOOTrainer + lmkl's KL term; returns the metric rows.

    policy_dir: the initial policy (also the reference) with its tokenizer; reward_fn: texts (prompt +
    completion) → rewards; fingerprint: what defines the run (default: the config, the engine and the
    policy folder) — another run in `run_dir` is refused unless overwrite. Raises ValueError on options
    the engine cannot reproduce (`check_supported`).
    """
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_supported(rloo_config)
    rc, run_dir = rloo_config, Path(run_dir)
    state = PartialState()
    if state.is_main_process:
        fp = fingerprint or {"rloo": rc.fingerprint(), "engine": "trl", "policy": str(policy_dir)}
        check_run_dir(run_dir, fp, overwrite=overwrite)
    state.wait_for_everyone()
    checkpoints = run_dir / "checkpoints"
    latest = _latest_checkpoint(checkpoints)
    rows: list[dict] = json.loads((latest / ROWS_FILE).read_text()) if latest else []
    if len(rows) > rc.steps:
        raise RunConfigMismatch(
            f"{run_dir} already holds {len(rows)} updates, more than steps = {rc.steps}; "
            "pass train.overwrite=true to train a shorter run afresh"
        )
    if len(rows) == rc.steps and (run_dir / "model").is_dir():
        if state.is_main_process:
            write_metrics(run_dir / "metrics.csv", rows)
        return rows
    args = trl_args(rc, checkpoints, processes=state.num_processes, checkpoint_every=checkpoint_every,
                    keep_checkpoints=keep_checkpoints)  # fmt: skip
    dtype = torch.float32
    model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    trainer = _run_trainer_class()(
        model, _text_reward(reward_fn), args=args, train_dataset=Dataset.from_dict({"prompt": list(prompts)}),
        processing_class=tokenizer, kl_gradient=FORMS[rc.estimator],
    )  # fmt: skip
    trainer.add_callback(_Rows(trainer, rc, run_dir, rows, on_step))
    trainer.train(resume_from_checkpoint=str(latest) if latest else None)
    if trainer.accelerator.is_main_process:
        write_metrics(run_dir / "metrics.csv", rows)
        with atomic_dir(run_dir / "model") as tmp:
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    state.wait_for_everyone()
    return rows


def _text_reward(reward_fn):
    """TRL's reward-function signature over lmkl's: the reward sees prompt + completion, as in lmkl.rloo."""

    def reward(prompts, completions, **_):
        values = reward_fn([p + c for p, c in zip(prompts, completions)])
        return [float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]

    reward.__name__ = str(getattr(reward_fn, "name", "reward"))
    return reward


def _run_trainer_class():
    from lmkl.integrations.trl.trainers import RBRLOOTrainer

    class RunTrainer(RBRLOOTrainer):
        """RBRLOOTrainer that keeps, for each rollout, the per-sequence mc, rb and −log p_old(y) of its
        first iteration (on-policy: θ = θ_old), gathered over processes, for the run's metric rows."""

        rollout_values: list[torch.Tensor]

        def _log_kl(self, stats, mode: str) -> None:
            super()._log_kl(stats, mode)
            cycle = self.args.steps_per_generation * self.num_iterations
            if mode == "train" and self._step % cycle < self.args.steps_per_generation:
                from lmkl.kl import estimate

                values = torch.stack(
                    [estimate(stats, "mc"), estimate(stats, "rb"), -stats.logp.sum(-1)], dim=-1
                ).detach()  # [B, 3]
                self.rollout_values = [*getattr(self, "rollout_values", []), self.accelerator.gather(values).cpu()]

    return RunTrainer


class _Rows(TrainerCallback):
    """Turns TRL's per-optimizer-step logs into one metrics.csv row per update; saves rows with checkpoints."""

    def __init__(self, trainer, rc: RLOOConfig, run_dir: Path, rows: list[dict], on_step):
        self.trainer, self.rc, self.run_dir, self.rows, self.on_step = trainer, rc, run_dir, rows, on_step
        self.per_update = rc.num_ppo_epochs * rc.num_mini_batches
        self.logs: list[dict] = []
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **_):
        if logs is None or "loss" not in logs:
            return
        self.logs.append(dict(logs))
        if state.global_step % self.per_update:
            return
        values = torch.cat(self.trainer.rollout_values).double()  # [batch, 3]: mc, rb, −log p_old(y)
        self.trainer.rollout_values = []
        first, mean = self.logs[0], lambda key: sum(x[key] for x in self.logs) / len(self.logs)
        mc, rb = summarize(values[:, 0]), summarize(values[:, 1])
        now = time.perf_counter()
        row = {
            "step": state.global_step // self.per_update, "reward": first["reward"], "reward_std": first["reward_std"],
            "kl_mc": mc.mean, "kl_mc_stderr": mc.stderr, "kl_rb": rb.mean, "kl_rb_stderr": rb.stderr,
            "kl_penalty": self.rc.beta * (rb.mean if self.rc.estimator == "rb" else mc.mean),
            "policy_loss": mean("loss"), "grad_norm": mean("grad_norm"),
            "clip_frac": mean("clip_ratio/region_mean"), "entropy": float(values[:, 2].mean()),
            "response_length": first["completions/mean_length"], "eos_frac": 1.0 - first["completions/clipped_ratio"],
            "lr": first["learning_rate"], "seconds": now - self.t0,
        }  # fmt: skip
        self.t0, self.logs = now, []
        if not all(math.isfinite(float(v)) for v in row.values()):
            raise FloatingPointError(f"update {row['step']}: non-finite metrics {row}")
        self.rows.append(row)
        if state.is_world_process_zero:
            write_metrics(self.run_dir / "metrics.csv", self.rows)
            if self.on_step is not None:
                self.on_step(row)

    def on_save(self, args, state, control, **_):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            atomic_write_json(folder / ROWS_FILE, self.rows[: state.global_step // self.per_update])
