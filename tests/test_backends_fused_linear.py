"""`token_stats_from_hidden` equals `token_stats` of materialized lm_head logits (float64 oracle)."""

from __future__ import annotations

import pytest
import torch

from lmkl.kl import row_stats_from_hidden, token_stats, token_stats_from_hidden


def _inputs(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T, V, Hp, Hq = 3, 41, 1271, 24, 16  # batch, positions, vocabulary, two different hidden sizes
    hp, hq = torch.randn(B, T, Hp, generator=g), torch.randn(B, T, Hq, generator=g)
    wp, wq = torch.randn(V, Hp, generator=g) / 2, torch.randn(V, Hq, generator=g) / 2
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) < 0.8
    return [x.to(dtype).requires_grad_() for x in (hp, wp, hq, wq)], tokens, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_materialized_logits(dtype):
    tensors, tokens, mask = _inputs(dtype)
    stats = token_stats_from_hidden(*tensors, tokens, mask)
    ref_in = [x.detach().double().requires_grad_() for x in tensors]
    hp, wp, hq, wq = ref_in
    if dtype == torch.float32:
        ref = token_stats(hp @ wp.T, hq @ wq.T, tokens, mask, backend="torch")
    else:
        # bf16 logits are rounded to bf16 by the matmul, as a model's lm_head rounds them: the oracle
        # starts from the same rounded logits, so only the float32 accumulation error remains.
        hp_, wp_, hq_, wq_ = (x.detach() for x in tensors)
        ref = token_stats((hp_ @ wp_.T).double(), (hq_ @ wq_.T).double(), tokens, mask, backend="torch")
    tol = {"atol": 2e-5, "rtol": 2e-5} if dtype == torch.float32 else {"atol": 1e-4, "rtol": 1e-4}
    for name in ("logp", "logq", "kl"):
        torch.testing.assert_close(
            getattr(stats, name).double(), getattr(ref, name).detach(), **tol, msg=name
        )
    if dtype != torch.float32:
        return  # gradients: checked in float32, where the oracle is not blurred by bf16 logits
    ups = [torch.randn(mask.shape, generator=torch.Generator().manual_seed(i)) for i in range(3)]

    def loss(s):
        return sum(
            (getattr(s, n) * u.to(getattr(s, n).dtype)).sum() for n, u in zip(("logp", "logq", "kl"), ups)
        )

    grads = torch.autograd.grad(loss(stats), tensors)
    ref_grads = torch.autograd.grad(loss(ref), ref_in)
    for name, a, b in zip(("hidden_p", "weight_p", "hidden_q", "weight_q"), grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4, msg=name)


def test_shape_errors_name_the_argument():
    (hp, wp, hq, wq), tokens, mask = _inputs(torch.float32)
    with pytest.raises(ValueError, match="weight_q"):
        token_stats_from_hidden(hp, wp, hq, wq[:-1], tokens, mask)
    with pytest.raises(ValueError, match="hidden_p/weight_p"):
        token_stats_from_hidden(hp, wp.T, hq, wq, tokens, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_equals_the_scoring_path_with_temperature_and_padded_lm_head(dtype):
    """τ = 0.7 and lm_heads with 5 and 9 padding rows beyond the tokenizer's V: equal to `token_stats`
    on the logits `lmkl.models` scoring builds (next_token_logits(raw, τ, vocab_size)[..., :V])."""
    from lmkl.models import next_token_logits

    (hp, wp, hq, wq), tokens, mask = _inputs(dtype, seed=4)
    V, tau = wp.shape[0], 0.7
    g = torch.Generator().manual_seed(9)
    pad = lambda w, k: torch.cat([w.detach(), torch.randn(k, w.shape[1], generator=g).to(dtype) * 50])  # noqa: E731
    wp_pad, wq_pad = pad(wp, 5).requires_grad_(), pad(wq, 9).requires_grad_()
    stats = token_stats_from_hidden(hp, wp_pad, hq, wq_pad, tokens, mask, temperature=tau, vocab_size=V)
    ref_in = [x.detach().clone().requires_grad_() for x in (hp, wp_pad, hq, wq_pad)]
    rhp, rwp, rhq, rwq = ref_in
    zp = next_token_logits(rhp @ rwp.T, temperature=tau, vocab_size=V)[..., :V]  # as scoring does
    zq = next_token_logits(rhq @ rwq.T, temperature=tau, vocab_size=V)[..., :V]
    ref = token_stats(zp, zq, tokens, mask, backend="torch")
    # float32: both paths compute the same rounded logits; the chunked accumulation differs in order
    # only (2e-5, as above). bf16: the same bf16 logits, then float32 accumulation (1e-4, as above).
    tol = {"atol": 2e-5, "rtol": 2e-5} if dtype == torch.float32 else {"atol": 1e-4, "rtol": 1e-4}
    for name in ("logp", "logq", "kl"):
        torch.testing.assert_close(getattr(stats, name), getattr(ref, name), **tol, msg=name)
    if dtype != torch.float32:
        return
    loss = lambda s: (s.logp * 0.3 - s.logq * 1.7 + s.kl * 2.0).sum()  # noqa: E731
    grads = torch.autograd.grad(loss(stats), [hp, wp_pad, hq, wq_pad])
    ref_grads = torch.autograd.grad(loss(ref), ref_in)
    for name, a, b in zip(("hidden_p", "weight_p", "hidden_q", "weight_q"), grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)
    assert float(grads[1][V:].abs().max()) == 0.0  # padding rows: no probability, no gradient
    # Without vocab_size the padded heads differ in rows and are refused by name.
    with pytest.raises(ValueError, match="vocab_size"):
        token_stats_from_hidden(hp, wp_pad, hq, wq_pad, tokens, mask)
    with pytest.raises(ValueError, match="temperature"):
        token_stats_from_hidden(hp, wp, hq, wq, tokens, mask, temperature=0.0)
    with pytest.raises(ValueError, match="weight_q"):
        token_stats_from_hidden(hp, wp, hq, wq[:-1], tokens, mask, vocab_size=V)


def test_row_stats_equal_the_masked_rows_and_refuse_nan():
    """`row_stats_from_hidden` on the unmasked rows gives token_stats_from_hidden's values there, the
    entropy H(p) of the materialized distribution, and a ValueError naming the input for a NaN state."""
    (hp, wp, hq, wq), tokens, mask = _inputs(torch.float64)
    stats = token_stats_from_hidden(hp, wp, hq, wq, tokens, mask)
    logp, logq, kl, entropy = row_stats_from_hidden(hp[mask], wp, hq[mask], wq, tokens[mask])
    for got, want in ((logp, stats.logp), (logq, stats.logq), (kl, stats.kl)):
        torch.testing.assert_close(got, want[mask], rtol=0, atol=1e-12)
    log_p = torch.log_softmax(hp[mask] @ wp.T, dim=-1)
    torch.testing.assert_close(entropy, -(log_p.exp() * log_p).sum(-1), rtol=0, atol=1e-10)
    bad = hq.detach()[mask].clone()
    bad[7, 0] = float("nan")
    with pytest.raises(ValueError, match=r"hidden_q/weight_q: NaN .* row 7 "):
        row_stats_from_hidden(hp[mask], wp, bad, wq, tokens[mask])
