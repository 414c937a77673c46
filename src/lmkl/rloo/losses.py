"""The math of one RLOO micro-batch: leave-one-out baselines, advantages, PPO-clip, the KL penalty.

Pure functions of tensors (no model, no optimizer) so that each can be tested alone; every KL value
and surrogate comes from `lmkl.kl` (estimate, surrogate_from_stats), never re-derived here.

Notation for sample i of a micro-batch: R_i the reward-model score, K_θ(y_i) the per-sequence KL
statistic of the chosen estimator (mc: U = Σ_t log p_θ/q; rb: C = Σ_t KL(p_θ(·|y<t) ‖ q(·|y<t))),
w_i = p_θ(y_i)/p_old(y_i) the sequence-level ratio, b_i the leave-one-out baseline over i's group,
clip(w) = clamp(w, 1 − ε, 1 + ε), and PPO(A, w) = max(−A·w, −A·clip(w)).

The three `gradient` forms (per-sample losses ℓ_i; the trainer averages them over the mini-batch):

- paper:  A_i = R_i − β K_θ(y_i) − sg(b_i),  ℓ_i = PPO(A_i, w_i).  The authors' code: K keeps its
  graph inside the advantage. At w = 1 its KL part has gradient β [∇K_θ(y_i) + (K(y_i) − b_i) ∇log p_θ(y_i)],
  whose expectation is β ∇KL (b_i is independent of y_i): unbiased for both estimators.
- causal: A_i = R_i − sg(b_i^R) (reward only), ℓ_i = PPO(A_i, w_i) + β · sg(w_i) · S_θ(y_i), with S the
  `mc_causal` / `rb_causal` surrogate of lmkl.kl; E_{p_θ}[∇S] = ∇KL, and the detached ratio turns it
  into an importance-weighted estimate under p_old in later PPO epochs: unbiased, lower variance.
- reward: A_i = R_i − β sg(K_old(y_i)) − sg(b_i), ℓ_i = PPO(A_i, w_i). TRL's default ("k1 in reward"):
  the KL is a detached penalty fixed at rollout time. Its gradient is β E[K(y) ∇log p(y)]: equal to
  ∇KL for mc, BIASED for rb (the pathwise term Σ_t ∇KL_t is missing; paper-digest §4.5, last row).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lmkl.kl import TokenStats, estimate, surrogate_from_stats


def loo_baseline(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Leave-one-out baseline b_i = (Σ_{j ∈ g(i)} v_j − v_i) / (|g(i)| − 1), detached.

    Args: values [m]; groups [m] long group ids. Every group must have ≥ 2 members.
    Returns: [m]. E[b_i] does not depend on y_i when group members are independent, so v_i − b_i
    is an unbiased, baselined score-function weight.
    """
    v = values.detach()
    G = int(groups.max()) + 1  # number of groups
    counts = torch.bincount(groups, minlength=G)
    if bool((counts[groups] < 2).any()):
        raise ValueError("groups: every baseline group needs ≥ 2 samples (leave-one-out)")
    sums = torch.zeros(G, dtype=v.dtype, device=v.device).index_add(0, groups, v)
    return (sums[groups] - v) / (counts[groups] - 1).to(v.dtype)


class PPOTerms(NamedTuple):
    losses: torch.Tensor  # [m] per-sample PPO-clip losses
    clipped: torch.Tensor  # [m] bool, the clipped branch was the max
    ratio: torch.Tensor  # [m] w = exp(log_ratio), with graph


def ppo_clip(advantages: torch.Tensor, log_ratio: torch.Tensor, cliprange: float) -> PPOTerms:
    """PPO's clipped surrogate with a sequence-level ratio: max(−A·w, −A·clamp(w, 1 − ε, 1 + ε)).

    Args: advantages [m] (may carry a graph: the `paper` form); log_ratio [m] = log p_θ(y) − log p_old(y).
    """
    ratio = log_ratio.exp()
    plain = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    return PPOTerms(torch.maximum(plain, clipped), clipped > plain, ratio)


class LossParts(NamedTuple):
    losses: torch.Tensor  # [m] per-sample losses ℓ_i (average them to get the micro-batch loss)
    kl_seq: torch.Tensor  # [m] K_θ(y_i) of the chosen estimator at the current θ (detached)
    advantages: torch.Tensor  # [m] detached
    clipped: torch.Tensor  # [m] bool


def rloo_losses(
    stats: TokenStats,
    old_logp: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    *,
    beta: float,
    estimator: str,
    gradient: str,
    cliprange: float,
    rollout_kl: torch.Tensor | None = None,
) -> LossParts:
    """Per-sample RLOO losses of one micro-batch (see the module docstring for each form).

    Args:
      stats: TokenStats [m, T] of the current policy p_θ (logp and kl carry θ's graph) vs the reference.
      old_logp: [m] log p_old(y_i) of the rollout policy (detached), for the ratio w.
      scores: [m] rewards R_i; groups: [m] baseline groups (`lmkl.rloo.pairing`).
      rollout_kl: [m] K_old(y_i) at rollout time (the `reward` form only).
    """
    log_ratio = stats.logp.sum(-1) - old_logp.detach()  # [m] sequence-level log w
    scores = scores.detach().to(stats.logp.dtype)
    if gradient == "paper":
        kl_seq = estimate(stats, estimator)  # [m], with θ's graph
        rlhf = scores - beta * kl_seq
        adv = rlhf - loo_baseline(rlhf, groups)
        ppo = ppo_clip(adv, log_ratio, cliprange)
        return LossParts(ppo.losses, kl_seq.detach(), adv.detach(), ppo.clipped)
    if gradient == "causal":
        surrogate = surrogate_from_stats(stats, f"{estimator}_causal")  # [m], value = K_θ(y_i)
        adv = scores - loo_baseline(scores, groups)
        ppo = ppo_clip(adv, log_ratio, cliprange)
        losses = ppo.losses + beta * ppo.ratio.detach() * surrogate
        return LossParts(losses, surrogate.detach(), adv, ppo.clipped)
    if gradient == "reward":
        if rollout_kl is None:
            raise ValueError("rollout_kl: required by gradient='reward' (the KL fixed at rollout time)")
        rlhf = scores - beta * rollout_kl.detach().to(scores.dtype)
        adv = rlhf - loo_baseline(rlhf, groups)
        ppo = ppo_clip(adv, log_ratio, cliprange)
        return LossParts(ppo.losses, estimate(stats, estimator).detach(), adv, ppo.clipped)
    raise ValueError(f"gradient: expected one of ['paper', 'causal', 'reward'], got {gradient!r}")
