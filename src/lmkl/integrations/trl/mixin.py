"""LMKLMixin: β · kl_surrogate of lmkl added to a TRL trainer's loss, from the two models' hidden states.

Per step, on the local batch of B sequences with T completion positions:

    rollout:  h_q = reference backbone(prompt + completion)[:, -T-1:-1]     [B, T, H], no grad, stored
    loss:     TRL's own policy forward; its fused head is replaced for that forward (shared_head) by
              one pass over the policy's hidden rows h_p that gives TRL its log p_θ(y_t) and entropies
              and gives lmkl  stats = row_stats_from_hidden(h_p, W_p, h_q, W_q, completion, τ)
              loss += β · mean_b Σ_t w_bt · term_bt(form)       (surrogate_terms; w: TRL's IS weights)

so the reference is scored once per rollout (its backbone only: no [B, T, V] logits), the policy's
backbone and lm_head run once for TRL's loss and the KL together, and the statistics are computed
chunk by chunk over positions.
The term is scaled for gradient accumulation exactly as the trainer's own loss is, so the update of
an optimizer step is β · ∇ mean over all its sequences (all micro-batches, all processes).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from lmkl.integrations.trl.shared_head import SharedPolicyHead, shared_policy_head
from lmkl.kl import TokenStats, estimate, surrogate_from_stats

# Gradient forms (lmkl.kl.SURROGATE_FORMS) the trainers offer: the two causal unbiased ones and GRPO's
# k3-as-a-loss (biased; for comparison).
KL_GRADIENTS: tuple[str, ...] = ("rb_causal", "mc_causal", "k3_loss")
# What is logged each step as kl/<name>: the batch's per-sequence KL estimates (lmkl.kl.ESTIMATORS),
# k3 as TRL's GRPO computes it (per-token k3 summed over the sequence).
KL_LOGGED: dict[str, str] = {"mc": "mc", "rb": "rb", "k3": "k3_token"}
REF_HIDDEN = "lmkl_ref_hidden_states"  # key of the reference's hidden states in TRL's batch dict
# Config attributes by which a model rescales its logits after the lm_head; TRL honours them, the
# hidden-state path does not (yet), so such models are refused rather than given a wrong KL.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def _backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body whose output's last_hidden_state feeds the lm_head (what TRL's fused head runs)."""
    return model.base_model


def _lm_head(model: torch.nn.Module) -> torch.nn.Module:
    head = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        raise ValueError(
            f"{type(model).__name__}: the lmkl KL term needs a bias-free linear lm_head (get_output_embeddings())"
        )
    return head


def _check_supported(model: torch.nn.Module, which: str) -> None:
    config = model.config.get_text_config()
    if config is not model.config:
        raise ValueError(f"{which}: multimodal models are not supported by the lmkl KL term")
    for key in _LOGIT_TRANSFORMS:
        if getattr(config, key, None) not in (None, 1.0):
            raise ValueError(f"{which}: config.{key} = {getattr(config, key)!r} rescales the logits; not supported")
    _lm_head(model)


class LMKLMixin:
    """Mix in before a TRL trainer class (`class T(LMKLMixin, GRPOTrainer)`) to replace TRL's KL term.

    Extra keyword arguments:
      kl_beta: the KL coefficient β (default: `args.beta`). TRL's own KL term is switched off (the
        trainer runs with beta = 0 on a copy of `args`): β multiplies lmkl's term instead, the
        **sequence-level** KL(p_θ‖q) (a sum over completion tokens) averaged over sequences.
      kl_gradient: rb_causal (default; unbiased, lowest variance), mc_causal (unbiased) or k3_loss
        (GRPO's k3 as a loss; biased, for comparison).
      ref_model: the reference q — a model, a local directory, or None for a frozen copy of the
        initial policy (a deep copy of `model`, or `model` loaded again when it is a path).
    With β = 0 and no ref_model the trainer is TRL's, unchanged. Subclasses define `_kl_weights`.
    Supported: text-only causal LMs with a bias-free lm_head; gradient accumulation, gradient
    checkpointing, accelerate multi-process (DDP). Not supported: PEFT, vLLM generation, sync_ref_model.
    """

    def __init__(
        self,
        model,
        reward_funcs=None,
        args=None,
        *more,
        kl_beta: float | None = None,
        kl_gradient: str = "rb_causal",
        ref_model=None,
        **kwargs,
    ):
        if args is None:
            raise ValueError("args: pass the trainer's config (its beta is the KL coefficient unless kl_beta is given)")
        beta = float(args.beta if kl_beta is None else kl_beta)
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"kl_beta: expected a finite KL coefficient ≥ 0, got {beta!r}")
        if kl_gradient not in KL_GRADIENTS:
            raise ValueError(f"kl_gradient: expected one of {list(KL_GRADIENTS)}, got {kl_gradient!r}")
        if getattr(args, "sync_ref_model", False):
            raise ValueError("sync_ref_model: not supported with the lmkl KL term (the reference stays fixed)")
        if getattr(args, "use_vllm", False):
            raise ValueError("use_vllm: not supported with the lmkl KL term")
        if kwargs.get("peft_config") is not None:
            raise ValueError("peft_config: PEFT is not supported with the lmkl KL term")
        if ref_model is None and (beta > 0) and not isinstance(model, (str, Path)):
            ref_model = copy.deepcopy(model)  # before TRL patches the policy: the initial policy, frozen
        elif ref_model is None and beta > 0:
            ref_model = str(model)
        trl_args = copy.copy(args)  # the caller's config is left as it was
        trl_args.beta = 0.0  # TRL's own KL term off (and no reference model of its own)
        super().__init__(model, reward_funcs, trl_args, *more, **kwargs)
        self.kl_beta, self.kl_gradient = beta, kl_gradient
        self.kl_ref_model = None if ref_model is None else self._prepare_kl_reference(ref_model)
        self._kl_head: SharedPolicyHead | None = None  # set during the policy's loss forward

    # --- the reference: built and placed like TRL's own -----------------------------------------

    def _prepare_kl_reference(self, ref_model) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM
        from trl.models import prepare_deepspeed, prepare_fsdp
        from trl.trainer.utils import disable_dropout_in_model

        policy = self.accelerator.unwrap_model(self.model)
        if isinstance(ref_model, (str, Path)):
            ref_model = AutoModelForCausalLM.from_pretrained(ref_model, dtype=policy.dtype)
        _check_supported(policy, "model")
        _check_supported(ref_model, "ref_model")
        if _lm_head(ref_model).weight.shape[0] != _lm_head(policy).weight.shape[0]:
            raise ValueError(
                f"ref_model: lm_head has {_lm_head(ref_model).weight.shape[0]} rows, the policy's "
                f"{_lm_head(policy).weight.shape[0]}; the KL needs one vocabulary"
            )
        ref_model.requires_grad_(False)
        ref_model.eval()
        if self.args.disable_dropout:
            disable_dropout_in_model(ref_model)
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(ref_model, self.accelerator)
        if self.is_fsdp_enabled:
            return prepare_fsdp(ref_model, self.accelerator)
        return self.accelerator.prepare_model(ref_model, evaluation_mode=True)

    @torch.no_grad()
    def _kl_reference_hidden(self, output: dict, batch_size: int) -> torch.Tensor:
        """h_q [B, T, H]: the reference's final hidden states at the positions predicting each completion token."""
        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)  # [B, P + T]
        attn = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        T = output["completion_ids"].shape[1]  # completion positions
        backbone = _backbone(self.accelerator.unwrap_model(self.kl_ref_model))
        parts = []
        for start in range(0, ids.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            with self.accelerator.autocast():
                h = backbone(input_ids=ids[sl], attention_mask=attn[sl], use_cache=False).last_hidden_state
            parts.append(h[:, -T - 1 : -1])  # column P−1+t predicts completion token t
        return torch.cat(parts)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.kl_ref_model is not None:
            if "pixel_values" in output:
                raise ValueError("the lmkl KL term supports text-only models; this batch has images")
            mode = "train" if self.model.training else "eval"
            size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
            output[REF_HIDDEN] = self._kl_reference_hidden(output, size)
        return output

    # --- the loss ---------------------------------------------------------------------------------

    def _get_per_token_logps_and_entropies(self, model, input_ids, *args, **kwargs):
        if self._kl_head is not None:  # inside _compute_loss: the micro-batch TRL scores the policy in
            batch_size = kwargs.get("batch_size", args[2] if len(args) > 2 else None)
            self._kl_head.micro_batch = batch_size or input_ids.size(0)
        return super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)

    def _compute_loss(self, model, inputs):
        if self.kl_ref_model is None:
            return super()._compute_loss(model, inputs)
        # TRL's policy forward scores through SharedPolicyHead: TRL's log-probs and entropies and the
        # KL statistics from one pass over the policy's lm_head (see shared_head).
        head = SharedPolicyHead(
            inputs[REF_HIDDEN], _lm_head(self.accelerator.unwrap_model(self.kl_ref_model)).weight.detach(),
            inputs["completion_ids"], inputs["completion_mask"], inputs["prompt_ids"].shape[1],
        )  # fmt: skip
        self._kl_head = head
        try:
            with shared_policy_head(head):
                loss = super()._compute_loss(model, inputs)
        finally:
            self._kl_head = None
        return loss + self._kl_loss(inputs, head.stats())

    def _kl_loss(self, inputs: dict, stats: TokenStats) -> torch.Tensor:
        """β · mean_b Σ_t w_bt term_bt, scaled for gradient accumulation like the trainer's loss; logs kl/*.

        stats: the batch's TokenStats [B, T] in p_θ's graph; stats.logp are also TRL's own log p_θ(y_t)
        of this forward (the same pass), from which TRL's importance weights are formed."""
        mode = "train" if self.model.training else "eval"
        if "tool_mask" in inputs:  # tool-output tokens carry no KL term
            keep = inputs["tool_mask"].bool()
            stats = TokenStats(*(x * keep for x in (stats.logp, stats.logq, stats.kl)), stats.mask & keep)
        self._log_kl(stats, mode)
        if self.kl_beta == 0:
            return stats.kl.new_zeros(())
        per_seq = surrogate_from_stats(stats, self.kl_gradient, weights=self._kl_weights(stats.logp.detach(), inputs))  # [B]
        term = self.kl_beta * per_seq.mean()
        if self.loss_is_scaled_for_ga and mode == "train":  # the trainer's loss is already divided by it
            term = term / self.current_gradient_accumulation_steps
        return term

    def _kl_weights(self, logps: torch.Tensor, inputs: dict) -> torch.Tensor | None:
        """TRL's importance weights π_θ/π_old ([B] or [B, T]; None: on-policy) from TRL's own per-token
        log p_θ(y_t) of this forward (logps [B, T], detached), computed exactly as its loss computes them."""
        raise NotImplementedError

    def _log_kl(self, stats, mode: str) -> None:
        """kl/mc, kl/rb, kl/k3: the batch's mean per-sequence KL estimates, over all processes."""
        values = torch.stack([estimate(stats, est).detach().float() for est in KL_LOGGED.values()], dim=-1)  # [B, 3]
        means = self.accelerator.gather(values).mean(dim=0).tolist()
        for name, value in zip(KL_LOGGED, means):
            self._metrics[mode][f"kl/{name}"].append(value)
