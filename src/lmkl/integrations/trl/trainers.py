"""TRL's GRPO and RLOO trainers with lmkl's KL term (LMKLMixin); each supplies TRL's own importance weights.

    RBGRPOTrainer: GRPO's per-token ratio exp(log p_θ(y_t) − log p_old(y_t)) (or, with
      importance_sampling_level="sequence", its per-sequence geometric mean), as GRPO's loss uses it.
    RBRLOOTrainer: RLOO's per-sequence ratio p_θ(y)/p_old(y), as RLOO's loss uses it; with it the
      importance-weighted surrogate's gradient is unbiased for ∇KL in every iteration.
Both come from TRL's own log-probabilities, so they are TRL's coef_1 exactly (1 in the first iteration).
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer, RLOOTrainer

from lmkl.integrations.trl.mixin import LMKLMixin


class RBGRPOTrainer(LMKLMixin, GRPOTrainer):
    """GRPOTrainer whose KL penalty is β · lmkl's kl_surrogate (default rb_causal); see LMKLMixin."""

    def _kl_weights(self, logps: torch.Tensor, inputs: dict) -> torch.Tensor | None:
        old = inputs.get("old_per_token_logps")
        if old is None:  # TRL skipped them: this batch is on-policy (ratio 1)
            return None
        mask = inputs["completion_mask"]
        log_ratio = (logps - old) * mask  # [B, T]
        if self.importance_sampling_level == "sequence":
            return (log_ratio.sum(-1) / mask.sum(-1).clamp(min=1)).exp()  # [B]
        return log_ratio.exp()


class RBRLOOTrainer(LMKLMixin, RLOOTrainer):
    """RLOOTrainer whose KL penalty is β · lmkl's kl_surrogate (default rb_causal) in the loss instead of
    TRL's k1 in the reward; see LMKLMixin."""

    def _kl_weights(self, logps: torch.Tensor, inputs: dict) -> torch.Tensor:
        return ((logps * inputs["completion_mask"]).sum(-1) - inputs["old_logps"]).exp()  # [B], as RLOO's loss
