"""lmkl's exact-KL penalty inside TRL's GRPO and RLOO trainers (extra `lmkl[trl]`).

    from lmkl.integrations.trl import RBGRPOTrainer
    trainer = RBGRPOTrainer(model, reward_funcs, args=GRPOConfig(beta=0.05, ...), train_dataset=ds,
                            kl_gradient="rb_causal")          # or mc_causal, k3_loss (biased, for comparison)
    trainer.train()                                            # logs kl/mc, kl/rb, kl/k3 each step

The trainers add β · mean_y kl_surrogate(y) to TRL's loss (`lmkl.kl.surrogate_from_stats`, with TRL's
own importance weights in its off-policy iterations) and switch TRL's own KL term off. The per-token
statistics come from the policy's and the reference's final hidden states through their lm_heads,
chunk by chunk (`lmkl.kl.row_stats_from_hidden`), in the same pass that gives TRL its log-probabilities
(`shared_head`): no [B, T, V] tensor of either model is kept.
"""

from lmkl.integrations.trl.mixin import KL_GRADIENTS, KL_LOGGED, LMKLMixin
from lmkl.integrations.trl.trainers import RBGRPOTrainer, RBRLOOTrainer

__all__ = ["KL_GRADIENTS", "KL_LOGGED", "LMKLMixin", "RBGRPOTrainer", "RBRLOOTrainer"]
