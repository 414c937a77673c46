"""lmkl.kl edge cases, for every registered backend: padding, support (−inf logits), dtypes.

Reference values come from `lmkl.exact.local_kl`, an independent float64 implementation.
"""

from __future__ import annotations

import pytest
import torch

from lmkl.exact import local_kl
from lmkl.kl import ESTIMATORS, SURROGATE_FORMS, estimate, kl_surrogate, token_stats
from lmkl.kl.backends import available

BACKENDS = available()
NINF = float("-inf")


def _batch(B=3, T=5, V=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(B, T, V, generator=g, dtype=torch.float64).to(dtype)
    lq = torch.randn(B, T, V, generator=g, dtype=torch.float64).to(dtype)
    tok = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.tensor([T, 2, 1])[:B]
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    return lp, lq, tok, mask


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_is_ignored_and_gets_zero_gradient(backend):
    lp, lq, tok, mask = _batch()
    clean = token_stats(lp, lq, tok, mask, backend=backend)
    junk_p, junk_q, junk_tok = lp.clone(), lq.clone(), tok.clone()
    pad = ~mask
    junk_p[pad] = torch.tensor([float("nan"), float("inf"), NINF, 1e30, 0, 0, 0], dtype=torch.float64)
    junk_q[pad] = float("nan")
    junk_tok[pad] = -100  # an ignore-index, outside the vocabulary
    junk_p.requires_grad_(True)
    junk_q.requires_grad_(True)
    stats = token_stats(junk_p, junk_q, junk_tok, mask, backend=backend)
    for a, b in zip(stats[:3], clean[:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert bool((a[pad] == 0).all())
    loss = sum(estimate(stats, e).sum() for e in ESTIMATORS)
    loss = loss + sum(kl_surrogate(junk_p, junk_q, junk_tok, mask, form=f).sum() for f in SURROGATE_FORMS)
    loss.backward()
    for grad in (junk_p.grad, junk_q.grad):
        assert not bool(torch.isnan(grad).any())
        assert bool((grad[pad] == 0).all())
    assert float(junk_p.grad[mask].abs().max()) > 0  # real positions do get a gradient


@pytest.mark.parametrize("backend", BACKENDS)
def test_q_zero_where_p_positive_gives_infinite_kl(backend):
    lp = torch.tensor([[[0.0, 1.0, 2.0]]], dtype=torch.float64)
    lq = torch.tensor([[[0.0, NINF, 2.0]]], dtype=torch.float64)
    mask = torch.ones(1, 1, dtype=torch.bool)
    stats = token_stats(lp, lq, torch.tensor([[1]]), mask, backend=backend)
    assert float(stats.kl) == float("inf")
    assert float(stats.logq) == NINF
    assert estimate(stats, "rb").item() == float("inf")
    assert estimate(stats, "mc").item() == float("inf")
    # a token that q can emit: logq finite, kl still +inf, no NaN anywhere
    stats = token_stats(lp, lq, torch.tensor([[0]]), mask, backend=backend)
    assert float(stats.kl) == float("inf") and torch.isfinite(stats.logq).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("q_row", [[0.0, 1.0, NINF], [0.0, 1.0, 3.0]], ids=["q_also_zero", "q_positive"])
def test_p_zero_gives_no_nan_in_values_or_gradients(backend, q_row):
    """A masked-vocabulary entry of p (−inf logit) contributes 0·log 0 = 0, whatever q is there."""
    lp = torch.tensor([[[0.0, 1.0, NINF]]], dtype=torch.float64, requires_grad=True)
    lq = torch.tensor([[q_row]], dtype=torch.float64, requires_grad=True)
    mask = torch.ones(1, 1, dtype=torch.bool)
    stats = token_stats(lp, lq, torch.tensor([[0]]), mask, backend=backend)
    expected = local_kl(lp.detach()[0, 0], lq.detach()[0, 0])
    torch.testing.assert_close(stats.kl[0, 0], expected, rtol=1e-12, atol=0)
    total = stats.kl.sum() + sum(kl_surrogate(lp, lq, torch.tensor([[0]]), mask, form=f).sum() for f in SURROGATE_FORMS)
    total.backward()
    for grad in (lp.grad, lq.grad):
        assert torch.isfinite(grad).all()
    assert float(lp.grad[0, 0, 2]) == 0.0  # an impossible token's logit gets no gradient


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_inputs_give_float32_close_to_float64(backend):
    """bf16 logits (8-bit mantissa, relative rounding 2^-9 ≈ 0.002 per logit) accumulate in float32.

    The reference is float64 on the *same rounded* logits, so only the accumulation differs and
    float32's 1e-7 relative error is the scale: 1e-5 absolute on values of size ~1.
    """
    lp, lq, tok, mask = _batch(B=3, T=41, V=1271, seed=1, dtype=torch.bfloat16)
    stats = token_stats(lp, lq, tok, mask, backend=backend)
    ref = token_stats(lp.double(), lq.double(), tok, mask, backend=backend)
    for a, b in zip(stats[:3], ref[:3]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=0, atol=1e-5)
    # and the float64 reference itself is the independent local KL
    rows = local_kl(lp.double()[mask], lq.double()[mask])
    torch.testing.assert_close(ref.kl[mask], rows, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_accumulation_dtype(backend, dtype):
    lp, lq, tok, mask = _batch(dtype=dtype)
    stats = token_stats(lp, lq, tok, mask, backend=backend)
    want = torch.float64 if dtype == torch.float64 else torch.float32
    assert {s.dtype for s in stats[:3]} == {want}
    assert {estimate(stats, e).dtype for e in ESTIMATORS} == {want}
