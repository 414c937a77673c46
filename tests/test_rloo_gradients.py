"""The KL part of every RLOO gradient form, in expectation, against the exact ∇KL (no sampling).

Two "prompts" A and B are exact tabular LMs whose logits are functions of one parameter θ
(p_A = θ, p_B = θ + offset: a prompt-conditioned model), each with its own reference. The first
optimizer step of an epoch follows ∇ (1/B) Σ_i ℓ_i over the batch of B = 2 prompts × k = 2 samples,
cut into micro-batches and baseline groups by the trainer's own schedule (`epoch_schedule`). With the
reward set to 0, only the KL part remains, and its exact expectation is a finite sum: for each
micro-batch, every tuple of strings of its members weighted by the product of their probabilities.
Unbiased means E[∇ mean ℓ] = β ∇ (KL_A + KL_B)/2, to float64 rounding (no statistical tolerance).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from lmkl.exact import exact_kl, random_tabular_pair, support
from lmkl.kl import estimate, token_stats
from lmkl.rloo import epoch_schedule, rloo_losses

BETA = 0.3
K = 2


def prompt_models(seed: int):
    """θ0 and, per prompt, (θ -> p_prompt(θ), q_prompt)."""
    pA, qA = random_tabular_pair(seed)
    pB, qB = random_tabular_pair(seed + 100)
    offset = pB.logits - pA.logits

    def make_a(theta):
        return pA.with_logits(theta)

    def make_b(theta):
        return pB.with_logits(theta + offset)

    return pA.logits.clone(), [(make_a, qA), (make_b, qB)]


def expected_first_step_grad(theta0, models, *, pairing, estimator, gradient, seed=0):
    """E[∇θ (1/B) Σ_i ℓ_i] of the first optimizer step, by enumeration of every micro-batch's tuples."""
    theta = theta0.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    (mini,) = epoch_schedule(pairing, num_prompts=2, k=K, num_mini_batches=1, micro_batch_size=2, generator=gen)
    B = 2 * K
    total = torch.zeros((), dtype=torch.float64)
    for micro in mini:
        members = [int(s) // K for s in micro.indices]  # the prompt of each member (prompt-major layout)
        sups = [support(models[m][0](theta0)) for m in members]
        combos = list(itertools.product(*(range(len(s.weights)) for s in sups)))
        n = len(combos)
        # rows member-major: member j's strings for every combo
        tokens = torch.cat([sups[j].tokens[[c[j] for c in combos]] for j in range(len(members))])
        mask = torch.cat([sups[j].mask[[c[j] for c in combos]] for j in range(len(members))])
        weight = torch.ones(n, dtype=torch.float64)
        for j in range(len(members)):
            weight = weight * sups[j].weights[[c[j] for c in combos]]
        logits_p, logits_q = [], []
        for j, m in enumerate(members):
            make, q = models[m]
            rows = slice(j * n, (j + 1) * n)
            logits_p.append(make(theta).next_token_logits(tokens[rows]))
            logits_q.append(q.next_token_logits(tokens[rows]))
        stats = token_stats(torch.cat(logits_p), torch.cat(logits_q), tokens, mask)
        # groups: member j of combo c gets the micro-batch's group of member j, offset per combo
        G = int(micro.groups.max()) + 1
        groups = torch.cat([micro.groups[j] + G * torch.arange(n) for j in range(len(members))])
        parts = rloo_losses(
            stats, stats.logp.sum(-1).detach(), torch.zeros(len(tokens), dtype=torch.float64), groups,
            beta=BETA, estimator=estimator, gradient=gradient, cliprange=0.2,
            rollout_kl=estimate(stats, estimator).detach(),
        )
        per_combo = parts.losses.reshape(len(members), n).sum(0)  # Σ over the micro-batch's members
        total = total + (weight * per_combo).sum() / B
    (grad,) = torch.autograd.grad(total, theta)
    return grad


def exact_target(theta0, models):
    theta = theta0.clone().requires_grad_(True)
    kl = sum(exact_kl(make(theta), q) for make, q in models) / len(models)
    (grad,) = torch.autograd.grad(BETA * kl, theta)
    return grad


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("pairing", ["per_prompt", "original"])
@pytest.mark.parametrize("estimator", ["mc", "rb"])
@pytest.mark.parametrize("gradient", ["paper", "causal"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kl_gradient_unbiased(gradient, estimator, pairing, seed):
    theta0, models = prompt_models(seed)
    got = expected_first_step_grad(theta0, models, pairing=pairing, estimator=estimator, gradient=gradient)
    want = exact_target(theta0, models)
    # Exact sums in float64: only rounding separates them (|∇| is O(0.1), 1e-9 is ~1e6 ulps of slack).
    assert rel_err(got, want) < 1e-9


@pytest.mark.parametrize("pairing", ["per_prompt", "original"])
def test_reward_form_mc_unbiased_rb_biased(pairing):
    """TRL's detached penalty: E[K(y)∇log p(y)] is ∇KL for K = U (mc) but misses Σ_t ∇KL_t for rb."""
    theta0, models = prompt_models(0)
    want = exact_target(theta0, models)
    mc = expected_first_step_grad(theta0, models, pairing=pairing, estimator="mc", gradient="reward")
    rb = expected_first_step_grad(theta0, models, pairing=pairing, estimator="rb", gradient="reward")
    assert rel_err(mc, want) < 1e-9
    # The missing pathwise term is of the order of the gradient itself (paper-digest §4.5: rel. bias ≈ 1).
    assert rel_err(rb, want) > 0.1


def test_original_pairing_mixes_prompts():
    """The check above is not vacuous: under `original` a micro-batch holds both prompts."""
    gen = torch.Generator().manual_seed(0)
    (mini,) = epoch_schedule("original", num_prompts=2, k=K, num_mini_batches=1, micro_batch_size=2, generator=gen)
    assert all(sorted((m.indices // K).tolist()) == [0, 1] for m in mini)

