"""Importance-weighted surrogates (off-policy PPO/GRPO iterations) against the exact ∇θ KL(p_θ‖q).

Samples come from p_old ≠ p_θ; with the per-sequence weight w(y) = p_θ(y)/p_old(y) held fixed,
Σ_y p_old(y) ∇θ[w(y) · loss(y)] must equal ∇θ KL(p_θ‖q) exactly for every unbiased form. Same tolerance
as test_kl_gradients (1e-10 on gradients of size ~0.01–1, float64 over 15 strings: rounding ~1e-15).
"""

from __future__ import annotations

import pytest
import torch

from lmkl.exact import exact_kl_grad, random_tabular_pair
from lmkl.exact.oracle import support
from lmkl.kl import SURROGATE_FORMS, UNBIASED_FORMS, surrogate_from_stats, surrogate_terms, token_stats

TOL = 1e-10


def _off_policy_grad(p_old, p, q, form: str) -> torch.Tensor:
    """Σ_y p_old(y) ∇θ[w(y)·loss_θ(y)] with w = p_θ(y)/p_old(y) detached, y over p_old's support."""
    theta = p.logits.detach().clone().requires_grad_(True)
    p_theta = p.with_logits(theta)
    sup = support(p_old)
    stats = token_stats(p_theta.next_token_logits(sup.tokens), q.next_token_logits(sup.tokens), sup.tokens, sup.mask)
    w = (p_theta.log_prob(sup.tokens, sup.mask) - sup.weights.log()).exp()  # [S] p_θ(y)/p_old(y)
    loss = surrogate_from_stats(stats, form, weights=w)  # [S]
    (grad,) = torch.autograd.grad((sup.weights * loss).sum(), theta)
    return grad


@pytest.mark.parametrize("form", sorted(UNBIASED_FORMS))
@pytest.mark.parametrize("seed", [0, 1])
def test_sequence_weights_make_off_policy_gradient_exact(form, seed):
    p, q = random_tabular_pair(seed)
    p_old, _ = random_tabular_pair(seed + 10)  # same structure, other parameters: full support
    exact = exact_kl_grad(p, q)
    assert float(exact.abs().max()) > 1e-3  # not two zeros
    got = _off_policy_grad(p_old, p, q, form)
    assert float((got - exact).abs().max()) < TOL
    unweighted = _off_policy_grad_unweighted(p_old, p, q, form)
    assert float((unweighted - exact).abs().max()) > 1e-3  # the weights are what makes it exact


def _off_policy_grad_unweighted(p_old, p, q, form: str) -> torch.Tensor:
    theta = p.logits.detach().clone().requires_grad_(True)
    p_theta = p.with_logits(theta)
    sup = support(p_old)
    stats = token_stats(p_theta.next_token_logits(sup.tokens), q.next_token_logits(sup.tokens), sup.tokens, sup.mask)
    (grad,) = torch.autograd.grad((sup.weights * surrogate_from_stats(stats, form)).sum(), theta)
    return grad


def _stats(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    B, T, V = 4, 6, 11  # batch, positions, vocabulary
    zp = torch.randn(B, T, V, generator=g, dtype=torch.float64, requires_grad=True)
    zq = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.arange(T).expand(B, T) < torch.tensor([[6], [3], [1], [5]])
    return zp, token_stats(zp, zq, tokens, mask)


@pytest.mark.parametrize("form", sorted(SURROGATE_FORMS))
def test_terms_sum_to_the_surrogate_and_unit_weights_change_nothing(form):
    zp, stats = _stats()
    loss = surrogate_from_stats(stats, form)
    terms = surrogate_terms(stats, form)
    assert bool((terms[~stats.mask] == 0).all())
    torch.testing.assert_close(terms.sum(-1), loss, rtol=0, atol=1e-12)
    (g_ref,) = torch.autograd.grad(loss.sum(), zp, retain_graph=True)
    for w in (torch.ones(4, dtype=torch.float64), torch.ones(4, 6, dtype=torch.float64)):
        (g,) = torch.autograd.grad(surrogate_from_stats(stats, form, weights=w).sum(), zp, retain_graph=True)
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)


def test_token_weights_scale_each_position_gradient():
    """rb_causal with per-token weights: the gradient is Σ_t w_t ∇(term_t), weights never differentiated."""
    zp, stats = _stats(1)
    w = torch.rand(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) + 0.5
    w.requires_grad_(True)  # must be detached inside
    (g,) = torch.autograd.grad(surrogate_from_stats(stats, "rb_causal", weights=w).sum(), zp, retain_graph=True)
    terms = surrogate_terms(stats, "rb_causal")
    (g_ref,) = torch.autograd.grad((terms * w.detach()).sum(), zp)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-12)


def test_bad_weights_shape_is_refused():
    _, stats = _stats()
    with pytest.raises(ValueError, match="weights"):
        surrogate_from_stats(stats, "rb_causal", weights=torch.ones(3))
