"""Every fast backend against one float64 oracle: values and both logit gradients.

The oracle is the reference backend (`torch`, autograd through log_softmax) in float64 on the same
input values. A masked vocabulary (−inf) is handed to the oracle as −1e4 instead: exp(−1e4 − lse) is
exactly 0 in float64, so the values are the same, and it avoids the reference's own 0·(−inf) = NaN in
its autograd backward (the forward handles −inf; its gradient does not).

Triton runs here under its CPU interpreter (TRITON_INTERPRET=1, set below before any kernel is
built) on small shapes; on a CUDA machine (benchmarks/gpu_check.sh) the same tests run the compiled
kernels. triton is in the `test` extra, so a missing triton fails here instead of being skipped.
"""

from __future__ import annotations

import pytest
import torch

from lmkl.kl import kl_surrogate, token_stats
from lmkl.kl.backends import HAS_TRITON, _auto_choice, available
from lmkl.kl.backends.torch_rows import torch_rows

CUDA = torch.cuda.is_available()  # without it, Triton runs under its interpreter (tests/conftest.py)

FAST = ["chunked", "compiled", "triton"]
DEVICE = "cuda" if CUDA else "cpu"


@pytest.fixture(autouse=True)
def _small_triton_blocks(monkeypatch):
    """Blocks of 256 so that V = 1271 takes five blocks: exercises the online rescaling and a tail."""
    if HAS_TRITON:
        from lmkl.kl.backends import triton_kernel

        monkeypatch.setattr(triton_kernel, "MAX_BLOCK_V", 256)


def test_triton_is_installed():
    # The test extra installs triton; its absence means the Triton tests below cannot mean anything.
    assert HAS_TRITON, "triton is not importable: install the project with the `test` extra"
    assert set(FAST) <= set(available())


def _logits(B, T, V, dtype, seed, masked_vocab=False):
    g = torch.Generator().manual_seed(seed)
    zp = 3 * torch.randn(B, T, V, generator=g, dtype=torch.float64)
    # q close to p plus an offset: a realistic KL (~0.5) and a large logit shift between the models.
    zq = zp + torch.randn(B, T, V, generator=g, dtype=torch.float64) + 20.0
    if masked_vocab:
        zp[..., -7:] = -torch.inf  # padded vocabulary: p = q = 0
        zq[..., -7:] = -torch.inf
        zp[..., :5] = -torch.inf  # p = 0 < q
    tokens = torch.randint(0, V - 7 if masked_vocab else V, (B, T), generator=g)
    tokens[..., 0] = 5 if masked_vocab else 0
    mask = torch.rand(B, T, generator=g) < 0.8
    mask[0, 0] = True
    return zp.to(DEVICE, dtype), zq.to(DEVICE, dtype), tokens.to(DEVICE), mask.to(DEVICE)


def _oracle_input(z):
    return z.detach().double().cpu().nan_to_num(neginf=-1e4).requires_grad_()


def _tolerances(dtype):
    # float32 accumulation: values to ~1e-6 relative to logits of size ~20; gradients are written in
    # the input dtype, so bf16 gradients carry bf16 rounding (2^-8 relative).
    if dtype == torch.bfloat16:
        return {"atol": 2e-5, "rtol": 2e-5}, {"atol": 2e-3, "rtol": 1e-2}
    if dtype == torch.float64:
        return {"atol": 1e-10, "rtol": 1e-10}, {"atol": 1e-12, "rtol": 1e-10}
    return {"atol": 2e-5, "rtol": 2e-5}, {"atol": 1e-6, "rtol": 1e-5}


def _check_against_oracle(backend, zp, zq, tokens, mask, dtype):
    fwd_tol, grad_tol = _tolerances(dtype)
    zp, zq = zp.requires_grad_(), zq.requires_grad_()
    stats = token_stats(zp, zq, tokens, mask, backend=backend)
    op, oq = _oracle_input(zp), _oracle_input(zq)
    ref = token_stats(op, oq, tokens.cpu(), mask.cpu(), backend="torch")
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    for name in ("logp", "logq", "kl"):
        got, want = getattr(stats, name), getattr(ref, name)
        assert got.dtype == acc, name
        torch.testing.assert_close(got.cpu().double(), want.detach(), **fwd_tol, msg=name)
    # Upstream gradients that are not 1, different for every output and position.
    g = torch.Generator().manual_seed(7)
    ups = [torch.randn(mask.shape, generator=g, dtype=torch.float64) for _ in range(3)]

    def loss(s, dev):
        return sum(
            (getattr(s, n) * u.to(dev, getattr(s, n).dtype)).sum()
            for n, u in zip(("logp", "logq", "kl"), ups)
        )

    gp, gq = torch.autograd.grad(loss(stats, zp.device), (zp, zq))
    rp, rq = torch.autograd.grad(loss(ref, "cpu"), (op, oq))
    assert gp.dtype == dtype and gq.dtype == dtype
    torch.testing.assert_close(gp.cpu().double(), rp, **grad_tol, msg="d/d logits_p")
    torch.testing.assert_close(gq.cpu().double(), rq, **grad_tol, msg="d/d logits_q")
    # Masked positions are never read and get exactly zero gradient.
    assert not gp[~mask].any() and not gq[~mask].any()


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_float64_oracle(backend, dtype):
    zp, zq, tokens, mask = _logits(3, 41, 1271, dtype, seed=0)
    _check_against_oracle(backend, zp, zq, tokens, mask, dtype)


@pytest.mark.parametrize("backend", FAST)
def test_masked_vocabulary(backend):
    zp, zq, tokens, mask = _logits(2, 9, 1271, torch.float32, seed=1, masked_vocab=True)
    _check_against_oracle(backend, zp, zq, tokens, mask, torch.float32)


@pytest.mark.parametrize("backend", FAST)
def test_float64_stays_float64(backend):
    zp, zq, tokens, mask = _logits(2, 5, 300, torch.float64, seed=2)
    _check_against_oracle(backend, zp, zq, tokens, mask, torch.float64)


@pytest.mark.parametrize("backend", FAST)
def test_infinite_kl_and_nan_rows(backend):
    """p > 0 = q gives +inf (never NaN); a NaN logit at a real position is a ValueError."""
    zp, zq, tokens, mask = _logits(1, 3, 300, torch.float32, seed=3)
    mask[:] = True
    zq[0, 1, 17] = -torch.inf  # p(17) > 0 = q(17) at position 1 only
    stats = token_stats(zp, zq, tokens, mask, backend=backend)
    ref = torch_rows(zp[0].double(), zq[0].double(), tokens[0])[2]
    assert torch.isinf(stats.kl[0, 1]) and stats.kl[0, 1] > 0
    torch.testing.assert_close(stats.kl[0, [0, 2]].double(), ref[[0, 2]], atol=2e-5, rtol=2e-5)
    zp[0, 2, 3] = torch.nan
    with pytest.raises(ValueError, match="position 2"):
        token_stats(zp, zq, tokens, mask, backend=backend)


@pytest.mark.parametrize("backend", FAST)
def test_kl_surrogate_gradient(backend):
    """∇ of kl_surrogate(rb_causal) w.r.t. logits_p equals the oracle's (logits_q is frozen there)."""
    zp, zq, tokens, mask = _logits(3, 11, 1271, torch.float32, seed=4)
    zp.requires_grad_()
    weights = torch.tensor([0.5, -1.0, 2.0], device=DEVICE)  # an upstream gradient that is not 1
    (gp,) = torch.autograd.grad((kl_surrogate(zp, zq, tokens, mask, backend=backend) * weights).sum(), zp)
    op = _oracle_input(zp)
    ref = kl_surrogate(op, zq.double().cpu(), tokens.cpu(), mask.cpu(), backend="torch")
    (rp,) = torch.autograd.grad((ref * weights.double().cpu()).sum(), op)
    torch.testing.assert_close(gp.cpu().double(), rp, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", FAST)
def test_no_real_position(backend):
    zp, zq, tokens, mask = _logits(2, 3, 300, torch.float32, seed=5)
    mask[:] = False
    zp.requires_grad_()
    stats = token_stats(zp, zq, tokens, mask, backend=backend)
    assert not stats.kl.any() and stats.kl.shape == (2, 3)
    (g,) = torch.autograd.grad(stats.kl.sum() + stats.logp.sum(), zp)
    assert not g.any()


def test_compiled_does_not_recompile_across_shapes():
    """After one call per (dtype, need_p, need_q) and per variant (a padded batch read through a row
    index, or every position real), new batch sizes and vocabularies reuse the graphs."""
    import torch._dynamo

    def run(B, T, V, every_position_real=False):
        zp, zq, tokens, mask = _logits(B, T, V, torch.float32, seed=B + V)
        if every_position_real:  # token_stats then hands the backend a reshape view of [B, T, V]
            mask[:] = True
        zp.requires_grad_()
        kl_surrogate(zp, zq, tokens, mask, backend="compiled").sum().backward()

    run(2, 5, 300)
    run(2, 5, 300, every_position_real=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for B, T, V, full in [(1, 1, 300, True), (3, 7, 300, False), (2, 9, 517, True), (4, 33, 1271, False)]:
            run(B, T, V, full)


def test_auto_choice():
    cpu = torch.zeros(1, 1, 3)
    assert _auto_choice(cpu) == "chunked"
    assert _auto_choice(cpu.double()) == "chunked"
