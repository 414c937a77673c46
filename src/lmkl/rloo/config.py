"""RLOOConfig: every option of the trainer, validated before any work.

The defaults are the authors' hyperparameters (Amini, Vieira, Cotterell 2025; their trl-0.16 fork,
`reference/paper-digest.md` §4.3 and §5.3): 16 prompts × k = 2 samples per update, 4 PPO epochs, one
mini-batch per epoch made of micro-batches of 16, cliprange 0.2, lr 3e-5, 53 new tokens, temperature 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lmkl.options import option

# What the KL penalty's gradient is made of (see lmkl.rloo.losses for the math of each):
GRADIENTS: dict[str, str] = {
    "paper": "the KL keeps its gradient inside the advantage, as in the authors' code (unbiased)",
    "causal": "reward-only advantage + β·kl_surrogate(mc_causal | rb_causal) (unbiased, lower variance)",
    "reward": "KL as a detached reward penalty only, TRL's default (unbiased for mc, BIASED for rb)",
}
PAIRINGS: dict[str, str] = {
    "per_prompt": "the leave-one-out baseline of a sample uses the other samples of its prompt",
    "original": "the authors' index logic: micro-batches pair prompt i with prompt i + m/k (§4.4)",
}
TRAIN_ESTIMATORS = ("mc", "rb")
REF_LOGITS = ("store", "recompute")
LR_SCHEDULES = ("constant", "linear")


@dataclass
class RLOOOptions:
    """The trainer's hyperparameters: every option of an RLOO run but the run itself (estimator, beta,
    seed, device: `RLOOConfig`). The pipeline's `train` section derives from this class, so each option
    and its help text are declared here once."""

    steps: int = option(100, "updates (one rollout of num_prompts × k samples each); re-running with a larger value continues the run")
    gradient: str = option("paper", f"what the KL penalty's gradient is made of: {' | '.join(GRADIENTS)} (lmkl.rloo.losses)")
    baseline_pairing: str = option("per_prompt", f"leave-one-out baseline groups: {' | '.join(PAIRINGS)} (the authors' prompt i ↔ i+8)")
    k: int = option(2, "samples per prompt (rloo_k)")
    num_prompts: int = option(16, "prompts per update")
    num_ppo_epochs: int = option(4, "passes over each rollout")
    num_mini_batches: int = option(1, "optimizer steps per PPO epoch")
    micro_batch_size: int = option(16, "samples per forward/backward (gradient accumulation within a mini-batch)")
    cliprange: float = option(0.2, "PPO ratio clip ε")
    lr: float = option(3e-5, "AdamW learning rate")
    lr_schedule: str = option("constant", "constant | linear (HF's default: decays to 0 at `steps`)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    adam_eps: float = option(1e-8, "AdamW ε")
    max_grad_norm: float | None = option(None, "gradient-norm clip; null: no clipping (the authors' trl 0.16 RLOO does not clip)")
    max_new_tokens: int = option(53, "length cap of a response")
    temperature: float = option(1.0, "sampling temperature of the rollouts")
    ref_logits: str = option("store", "store (rollout-time, B×T×V memory) | recompute (one reference pass per micro-batch)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid key."""
        _choice("gradient", self.gradient, tuple(GRADIENTS))
        _choice("baseline_pairing", self.baseline_pairing, tuple(PAIRINGS))
        _choice("ref_logits", self.ref_logits, REF_LOGITS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.k < 2:
            raise ValueError(f"k: expected ≥ 2 samples per prompt (a leave-one-out baseline needs two), got {self.k!r}")
        for key in ("num_prompts", "num_ppo_epochs", "num_mini_batches", "micro_batch_size", "max_new_tokens", "steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: expected ≥ 1, got {getattr(self, key)!r}")
        if not self.cliprange > 0:
            raise ValueError(f"cliprange: expected > 0, got {self.cliprange!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr!r}")
        if not self.adam_eps > 0:
            raise ValueError(f"adam_eps: expected > 0, got {self.adam_eps!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm: expected > 0 or None, got {self.max_grad_norm!r}")
        batch = self.num_prompts * self.k
        if batch % self.num_mini_batches:
            raise ValueError(
                f"num_mini_batches: must divide the batch num_prompts × k = {batch}, got {self.num_mini_batches}"
            )
        mini = batch // self.num_mini_batches
        if mini % self.micro_batch_size:
            raise ValueError(f"micro_batch_size: must divide the mini-batch of {mini} samples, got {self.micro_batch_size}")
        if self.micro_batch_size % self.k:
            raise ValueError(
                f"micro_batch_size: must be a multiple of k = {self.k} (each baseline group lives in one "
                f"micro-batch), got {self.micro_batch_size}"
            )
        if self.baseline_pairing == "per_prompt" and mini % self.k:
            raise ValueError(f"num_mini_batches: each mini-batch must hold whole prompts (multiples of k = {self.k})")


@dataclass
class RLOOConfig(RLOOOptions):
    """One RLOO run: the hyperparameters (RLOOOptions) plus the run itself. `steps` is the number of
    updates (one rollout of num_prompts × k samples each).

    Options that change the math: estimator, gradient, baseline_pairing, beta, k, num_ppo_epochs,
    cliprange. `ref_logits` trades memory for time and does not change the result beyond rounding.
    """

    estimator: str = option("rb", f"which per-sequence KL enters the penalty: {' | '.join(TRAIN_ESTIMATORS)}")
    beta: float = option(0.05, "KL coefficient β")
    seed: int = option(0, "seed of the sampling and shuffling generators")
    device: str = option("cpu", "torch device")

    def validate(self) -> None:
        """Raise ValueError naming the first invalid key."""
        _choice("estimator", self.estimator, TRAIN_ESTIMATORS)
        if not self.beta >= 0:  # also refuses NaN
            raise ValueError(f"beta: expected a KL coefficient ≥ 0, got {self.beta!r}")
        super().validate()

    @property
    def batch_size(self) -> int:
        """Samples per update: num_prompts × k."""
        return self.num_prompts * self.k

    def as_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> dict:
        """Every option whose change makes a resumed run a different run (all but steps and device)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("steps", "device")}


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}: expected one of {list(allowed)}, got {value!r}")
