"""No backend returns a NaN gradient where the `torch` backend's gradient is finite.

The `torch` backend is autograd through log_softmax: an output nobody uses (the KL in `mc_seq`,
a KL multiplied by nothing) is never differentiated, so a +inf KL (q = 0 on a token p can emit)
costs it nothing. The analytic backwards of `chunked`, `compiled` and `triton` receive a zero
upstream gradient for such an output instead and must not turn 0 · (+inf − +inf) into NaN. The
design makes −inf logits legal (a masked vocabulary), so every case below has some.

Each case is checked backend by backend against `torch` on the same float32 inputs: wherever the
torch gradient is finite, the backend's is finite and equal to it (float32 accumulation on logits
of size ~3: 1e-5 relative, 1e-6 absolute, as in test_backends.py). Positions where the torch
gradient is not finite are not compared (the gradient of a +inf KL that is used has no value).

Without CUDA, Triton runs under its CPU interpreter (tests/conftest.py): the kernel's own math, on
CPU tensors. With CUDA (benchmarks/gpu_check.sh runs this file) every case runs on the GPU, Triton
as the compiled kernel.
"""

from __future__ import annotations

import pytest
import torch

from lmkl.kl import kl_surrogate, token_stats
from lmkl.kl.backends import HAS_TRITON

BACKENDS = ["chunked", "compiled"] + (["triton"] if HAS_TRITON else [])
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
B, T, V = 2, 5, 97  # batch, positions, vocabulary (odd V: no power-of-two block fits exactly)


def _case(seed: int):
    """Logits with −inf entries: a padded vocabulary (p = q = 0), p = 0 < q, and q = 0 < p at
    position (0, 1) on a token that is not sampled there (KL = +inf at that position only)."""
    g = torch.Generator().manual_seed(seed)
    zp = 3 * torch.randn(B, T, V, generator=g)
    zq = zp + torch.randn(B, T, V, generator=g)
    zp[..., -3:] = zq[..., -3:] = -torch.inf  # padded vocabulary rows
    zp[..., :2] = -torch.inf  # p = 0 < q
    tokens = torch.randint(2, V - 3, (B, T), generator=g)
    tokens[0, 1] = 10
    zq[0, 1, 11] = -torch.inf  # q = 0 < p at an unsampled token: KL(0, 1) = +inf
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, -1] = False
    return zp.to(DEVICE), zq.to(DEVICE), tokens.to(DEVICE), mask.to(DEVICE)


def _stats_loss(which: str):
    """A loss of the three statistics; its weights give the upstream gradients."""

    def loss(stats):
        logp, logq, kl = stats.logp, stats.logq, stats.kl
        if which == "logp_logq":  # the KL is never used: zero upstream gradient for it everywhere
            return (logp * 0.7 - logq * 1.3).sum()
        if which == "kl_unused_row":  # the KL is used except at the +inf position
            finite = torch.isfinite(kl.detach())
            return logp.sum() + torch.where(finite, kl, 0.0).sum()
        if which == "zero_upstream":  # every upstream gradient is zero
            return (logp * 0).sum() + (logq * 0).sum() + (kl * 0).sum()
        raise AssertionError(which)

    return loss


def _grads(backend: str, loss, zp, zq, tokens, mask):
    zp, zq = zp.clone().requires_grad_(), zq.clone().requires_grad_()
    value = loss(zp, zq, tokens, mask, backend)
    return torch.autograd.grad(value, (zp, zq), allow_unused=True)


def _check(backend: str, loss, seed: int) -> None:
    zp, zq, tokens, mask = _case(seed)
    want = _grads("torch", loss, zp, zq, tokens, mask)
    got = _grads(backend, loss, zp, zq, tokens, mask)
    for name, g, w in zip(("d/d logits_p", "d/d logits_q"), got, want):
        if w is None:
            continue
        finite = torch.isfinite(w)
        assert finite.any(), "the case must leave something to compare"
        assert torch.isfinite(g[finite]).all(), f"{backend}: {name} not finite where torch's is"
        torch.testing.assert_close(g[finite], w[finite], atol=1e-6, rtol=1e-5, msg=name)


def _via_token_stats(which):
    stats_loss = _stats_loss(which)
    return lambda zp, zq, tokens, mask, backend: stats_loss(token_stats(zp, zq, tokens, mask, backend=backend))


def _via_surrogate(form):
    def loss(zp, zq, tokens, mask, backend):
        return kl_surrogate(zp, zq.detach(), tokens, mask, form=form, backend=backend).sum()

    return loss


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["logp_logq", "kl_unused_row", "zero_upstream"])
def test_token_stats_gradients_finite_where_torch_is(backend, which):
    _check(backend, _via_token_stats(which), seed=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["mc_seq", "mc_causal"])
def test_mc_surrogates_with_an_infinite_kl(backend, form):
    """The score-function forms use logp and logq only: a q = 0 token must not poison them."""
    _check(backend, _via_surrogate(form), seed=1)


def test_the_case_has_an_infinite_kl():
    # Guards the premise of every test above: without a +inf KL they could not fail.
    zp, zq, tokens, mask = _case(0)
    kl = token_stats(zp, zq, tokens, mask, backend="torch").kl
    assert torch.isinf(kl[0, 1]) and torch.isfinite(kl[mask & ~torch.isinf(kl)]).all()
    zp, zq = zp.requires_grad_(), zq.requires_grad_()
    (g,) = torch.autograd.grad(token_stats(zp, zq, tokens, mask, backend="chunked").kl[0, 0], zp)
    assert torch.isfinite(g).all()
