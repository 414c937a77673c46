"""The RLOO update: rollout from the current policy, then PPO epochs over the fixed batch.

One `step()`:
1. Rollout (no grad): the next `num_prompts` prompts (an epoch-wise shuffle of the training prompts),
   k samples each at `temperature` (lmkl.models.sample); rewards of prompt + response text; one
   teacher-forced pass of the policy and of the reference gives log p_old(y) for the PPO ratio and
   the per-sequence mc and rb values of the batch (logged; the `reward` form's fixed penalty).
2. `num_ppo_epochs` passes: each epoch's schedule (lmkl.rloo.pairing) cuts the batch into mini-batches
   (one AdamW step each) of micro-batches (one backward each, losses summed / mini-batch size, so a
   step follows the mini-batch mean). Each micro-batch recomputes the policy's logits with grad and
   the reference's (stored at rollout, or recomputed: `ref_logits`), takes `lmkl.kl.token_stats`
   and the per-sample losses of `lmkl.rloo.losses.rloo_losses`.

Randomness: two explicit generators (sampling on the model's device, shuffling on the CPU); with the
model's dropout off (models are kept in eval mode, as TRL disables dropout for RLOO) a step is a
deterministic function of (weights, optimizer state, generators, prompt cursor): `state_dict()`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lmkl.kl import TokenStats, estimate, summarize, token_stats
from lmkl.models import ModelPair, Rollout, response_logits, sample
from lmkl.rloo.config import RLOOConfig
from lmkl.rloo.losses import rloo_losses
from lmkl.rloo.pairing import epoch_schedule

RewardFn = Callable[[list[str]], torch.Tensor]


def _rng_bytes(state: torch.Tensor) -> bytes:
    """A generator state (a CPU ByteTensor) as bytes: untouched by torch.load's map_location."""
    return state.detach().cpu().numpy().tobytes()


def _rng_tensor(state: bytes | torch.Tensor) -> torch.Tensor:
    """The CPU ByteTensor that `set_state` takes, from bytes or (checkpoints written before the
    bytes format) a ByteTensor on any device."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", torch.uint8)
    return torch.frombuffer(bytearray(state), dtype=torch.uint8)


class NonFiniteError(RuntimeError):
    """A NaN/inf reward or loss; `step` is the 1-based update at which it appeared."""

    def __init__(self, what: str, step: int):
        super().__init__(f"non-finite {what} at step {step}")
        self.what, self.step = what, step


@dataclass
class Batch:
    """One rollout and what the PPO epochs need from it (all detached)."""

    rollout: Rollout
    scores: torch.Tensor  # [B] rewards
    old_logp: torch.Tensor  # [B] log p_old(y) = Σ_t log p_old(y_t)
    kl_values: dict[str, torch.Tensor]  # "mc", "rb" -> [B] per-sequence values under p_old
    ref_logits: torch.Tensor | None  # [B, T, V] when config.ref_logits == "store"


class RLOOTrainer:
    """RLOO with a KL penalty of a chosen estimator and gradient form (see lmkl.rloo.losses).

    pair: policy p (trained in place) and reference q (frozen), over one vocabulary.
    reward_fn: list of texts (prompt + response) -> [n] float rewards.
    prompts: the training prompts (strings).
    """

    def __init__(self, pair: ModelPair, reward_fn: RewardFn, prompts: list[str], config: RLOOConfig):
        config.validate()
        if len(prompts) < config.num_prompts:
            raise ValueError(
                f"prompts: need at least num_prompts = {config.num_prompts} training prompts, got {len(prompts)}"
            )
        self.pair, self.reward_fn, self.prompts, self.config = pair, reward_fn, list(prompts), config
        self.policy, self.ref = pair.p, pair.q
        self.policy.eval()  # no dropout: sampling and scoring see one deterministic distribution
        self.ref.eval().requires_grad_(False)
        self.device = next(self.policy.parameters()).device
        self.vocab_size = pair.vocab_size
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=config.lr, eps=config.adam_eps, weight_decay=config.weight_decay
        )
        self.sample_generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.shuffle_generator = torch.Generator().manual_seed(config.seed + 1)
        self.step_count = 0  # updates done
        self.prompt_order = torch.randperm(len(self.prompts), generator=self.shuffle_generator)
        self.prompt_cursor = 0

    # ------------------------------------------------------------------ state (checkpoints)
    def state_dict(self) -> dict:
        """Everything a step depends on. The generator states and the prompt order are stored as
        bytes and a list, not tensors, so that `torch.load(map_location=device)` leaves them on the
        host: `Generator.set_state` and `torch.set_rng_state` take only a CPU ByteTensor, even for a
        CUDA generator. `lr_schedule_steps`: the steps the learning-rate schedule was planned for."""
        return {
            "step": self.step_count,
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sample_generator": _rng_bytes(self.sample_generator.get_state()),
            "shuffle_generator": _rng_bytes(self.shuffle_generator.get_state()),
            "torch_rng": _rng_bytes(torch.get_rng_state()),
            "prompt_order": self.prompt_order.tolist(),
            "prompt_cursor": self.prompt_cursor,
            "lr_schedule_steps": self.config.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`, whatever device its tensors were mapped to on loading (the
        weights and optimizer state are copied to the policy's device; RNG states go in on the CPU)."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sample_generator.set_state(_rng_tensor(state["sample_generator"]))
        self.shuffle_generator.set_state(_rng_tensor(state["shuffle_generator"]))
        torch.set_rng_state(_rng_tensor(state["torch_rng"]))
        order = state["prompt_order"]
        self.prompt_order = order.detach().cpu().clone() if isinstance(order, torch.Tensor) else torch.tensor(order, dtype=torch.long)
        self.prompt_cursor = int(state["prompt_cursor"])
        self.step_count = int(state["step"])

    # ------------------------------------------------------------------ rollout
    def next_prompts(self) -> list[str]:
        """The next num_prompts prompts of an epoch-wise shuffle (a fresh shuffle when one runs out)."""
        n = self.config.num_prompts
        if self.prompt_cursor + n > len(self.prompt_order):
            self.prompt_order = torch.randperm(len(self.prompts), generator=self.shuffle_generator)
            self.prompt_cursor = 0
        idx = self.prompt_order[self.prompt_cursor : self.prompt_cursor + n].tolist()
        self.prompt_cursor += n
        return [self.prompts[i] for i in idx]

    def _logits(self, model, rollout: Rollout) -> torch.Tensor:
        """[B, T, V] logits of the tempered model at each response position (vocabulary columns only)."""
        z = response_logits(model, rollout, temperature=self.config.temperature, vocab_size=self.vocab_size)
        return z[..., : self.vocab_size]

    @torch.no_grad()
    def rollout(self) -> Batch:
        cfg = self.config
        prompts = self.next_prompts()
        ro = sample(
            self.policy, self.pair.tokenizer, prompts, n_per_prompt=cfg.k, max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature, generator=self.sample_generator, vocab_size=self.vocab_size,
        )
        # The reward sees prompt + response, as the authors' (and TRL's) reward pipeline does.
        texts = [prompts[int(i)] + t for i, t in zip(ro.prompt_index, ro.texts)]
        scores = torch.as_tensor(self.reward_fn(texts), dtype=torch.float32).reshape(-1).cpu()
        if scores.numel() != len(ro):
            raise ValueError(f"reward_fn: returned {scores.numel()} rewards for {len(ro)} texts")
        if not bool(torch.isfinite(scores).all()):
            raise NonFiniteError("reward", self.step_count + 1)
        old_logp, mc, rb, refs = [], [], [], []
        for start in range(0, len(ro), cfg.micro_batch_size):  # bound the peak: one chunk's logits at a time
            mb = ro.select(slice(start, start + cfg.micro_batch_size))
            zq = self._logits(self.ref, mb)
            stats = token_stats(self._logits(self.policy, mb), zq, mb.response, mb.response_mask)
            old_logp.append(stats.logp.sum(-1))
            mc.append(estimate(stats, "mc"))
            rb.append(estimate(stats, "rb"))
            if cfg.ref_logits == "store":
                refs.append(zq)
        return Batch(
            rollout=ro,
            scores=scores.to(self.device),
            old_logp=torch.cat(old_logp),
            kl_values={"mc": torch.cat(mc), "rb": torch.cat(rb)},
            ref_logits=torch.cat(refs) if refs else None,
        )

    # ------------------------------------------------------------------ update
    def _micro_stats(self, batch: Batch, idx: torch.Tensor) -> TokenStats:
        mb = batch.rollout.select(idx)
        zp = self._logits(self.policy, mb)  # with grad
        if batch.ref_logits is not None:
            zq = batch.ref_logits[idx.to(batch.ref_logits.device)]
        else:
            with torch.no_grad():
                zq = self._logits(self.ref, mb)
        return token_stats(zp, zq, mb.response, mb.response_mask)

    def _set_lr(self) -> float:
        cfg = self.config
        lr = cfg.lr
        if cfg.lr_schedule == "linear":  # HF's default: linear decay to 0 at the last step
            lr = cfg.lr * max(0.0, 1.0 - self.step_count / cfg.steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def update(self, batch: Batch) -> dict[str, float]:
        """The PPO epochs over one batch; returns the averaged optimisation metrics."""
        cfg = self.config
        lr = self._set_lr()
        params = [p for p in self.policy.parameters() if p.requires_grad]
        losses, clip, norms = [], [], []
        for _ in range(cfg.num_ppo_epochs):
            schedule = epoch_schedule(
                cfg.baseline_pairing, num_prompts=cfg.num_prompts, k=cfg.k,
                num_mini_batches=cfg.num_mini_batches, micro_batch_size=cfg.micro_batch_size,
                generator=self.shuffle_generator,
            )
            for mini in schedule:
                mini_size = sum(len(m.indices) for m in mini)
                self.optimizer.zero_grad(set_to_none=True)
                for micro in mini:
                    idx = micro.indices.to(self.device)
                    stats = self._micro_stats(batch, micro.indices)
                    parts = rloo_losses(
                        stats, batch.old_logp[idx], batch.scores[idx], micro.groups.to(self.device),
                        beta=cfg.beta, estimator=cfg.estimator, gradient=cfg.gradient, cliprange=cfg.cliprange,
                        rollout_kl=batch.kl_values[cfg.estimator][idx],
                    )
                    loss = parts.losses.sum() / mini_size  # the mini-batch mean, accumulated
                    if not bool(torch.isfinite(loss)):
                        raise NonFiniteError("loss", self.step_count + 1)
                    loss.backward()
                    losses.append(float(parts.losses.detach().mean()))
                    clip.append(float(parts.clipped.float().mean()))
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)
                if not bool(torch.isfinite(norm)):
                    raise NonFiniteError("gradient", self.step_count + 1)
                norms.append(float(norm))
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        return {"policy_loss": mean(losses), "clip_frac": mean(clip), "grad_norm": mean(norms), "lr": lr}

    def step(self) -> dict[str, float]:
        """One update (rollout + PPO epochs); returns the metrics row of lmkl.rloo.metrics."""
        t0 = time.perf_counter()
        batch = self.rollout()
        opt = self.update(batch)
        self.step_count += 1
        return step_metrics(self.step_count, batch, opt, self.config, time.perf_counter() - t0)


def step_metrics(step: int, batch: Batch, opt: dict[str, float], cfg: RLOOConfig, seconds: float) -> dict:
    """The metrics row of one update: rollout statistics (under p_old) and optimisation averages."""
    scores = batch.scores.double()
    mc, rb = summarize(batch.kl_values["mc"]), summarize(batch.kl_values["rb"])
    kl_used = mc if cfg.estimator == "mc" else rb
    mask = batch.rollout.response_mask
    return {
        "step": step,
        "reward": float(scores.mean()),
        "reward_std": float(scores.std(correction=1)),
        "kl_mc": mc.mean,
        "kl_mc_stderr": mc.stderr,
        "kl_rb": rb.mean,
        "kl_rb_stderr": rb.stderr,
        "kl_penalty": cfg.beta * kl_used.mean,
        "policy_loss": opt["policy_loss"],
        "grad_norm": opt["grad_norm"],
        "clip_frac": opt["clip_frac"],
        # −log p_old(y) summed over the response: an unbiased estimate of the sequence entropy H(p_old)
        "entropy": float(-batch.old_logp.double().mean()),
        "response_length": float(mask.sum(-1).double().mean()),
        "eos_frac": float(batch.rollout.ended.double().mean()),
        "lr": opt["lr"],
        "seconds": seconds,
    }
