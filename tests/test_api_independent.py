"""An independent check of the public math API (design §2), from a toy built here with itertools/numpy.

Nothing from lmkl.exact: the model pair, its strings, the exact KL and its gradient are computed in
this file with numpy (float64), and only `token_stats`, `estimate`, `summarize`, `kl_surrogate` are
called. Toy: letters {0, 1, 2}, EOS = 3, at most 2 letters (EOS forced after), one random logit row
per prefix, q = p + noise in log space: 1 + 3 + 9 = 13 strings.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lmkl.kl import estimate, kl_surrogate, summarize, token_stats

LETTERS, EOS, L = (0, 1, 2), 3, 2
V, T = 4, L + 1  # vocabulary, positions
PREFIXES = [h for k in range(L + 1) for h in itertools.product(LETTERS, repeat=k)]
INDEX = {h: i for i, h in enumerate(PREFIXES)}


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _rows(theta: np.ndarray) -> np.ndarray:
    """Per-prefix logits with EOS forced at length L."""
    z = theta.copy()
    for h, i in INDEX.items():
        if len(h) == L:
            z[i, list(LETTERS)] = -np.inf
    return z


rng = np.random.default_rng(1234)
THETA_P = rng.normal(size=(len(PREFIXES), V))
THETA_Q = THETA_P + 0.7 * rng.normal(size=(len(PREFIXES), V))

# Every string = a prefix followed by EOS; its positions read the logits of its own prefixes.
TOKENS = np.full((len(PREFIXES), T), EOS)
MASK = np.zeros((len(PREFIXES), T), dtype=bool)
POS_PREFIX = np.zeros((len(PREFIXES), T), dtype=int)  # prefix id per position (0 on padding)
for s, h in enumerate(PREFIXES):
    TOKENS[s, : len(h)] = h
    MASK[s, : len(h) + 1] = True
    for t in range(len(h) + 1):
        POS_PREFIX[s, t] = INDEX[h[:t]]


def _string_logprob(theta: np.ndarray) -> np.ndarray:
    lp = _log_softmax(_rows(theta))
    return np.array([sum(lp[POS_PREFIX[s, t], TOKENS[s, t]] for t in range(T) if MASK[s, t]) for s in range(len(PREFIXES))])


def _kl(theta_p: np.ndarray) -> float:
    lp, lq = _string_logprob(theta_p), _string_logprob(THETA_Q)
    return float(np.sum(np.exp(lp) * (lp - lq)))


W = np.exp(_string_logprob(THETA_P))  # p(y) per string
KL = _kl(THETA_P)


def _torch_inputs(theta_p: torch.Tensor | None = None):
    tp = torch.tensor(_rows(THETA_P)) if theta_p is None else theta_p
    idx = torch.tensor(POS_PREFIX)
    return tp[idx], torch.tensor(_rows(THETA_Q))[idx], torch.tensor(TOKENS), torch.tensor(MASK)


def test_toy_is_a_distribution():
    assert W.sum() == pytest.approx(1.0, abs=1e-14) and len(W) == 13


def test_token_stats_fields_are_the_per_position_quantities():
    stats = token_stats(*_torch_inputs())
    lp, lq = _log_softmax(_rows(THETA_P)), _log_softmax(_rows(THETA_Q))
    for s, t in itertools.product(range(len(PREFIXES)), range(T)):
        got = (stats.logp[s, t].item(), stats.logq[s, t].item(), stats.kl[s, t].item())
        if not MASK[s, t]:
            assert got == (0.0, 0.0, 0.0)
            continue
        h, y = POS_PREFIX[s, t], TOKENS[s, t]
        assert got == pytest.approx((lp[h, y], lq[h, y], _local_kl()[h]), abs=1e-12)
    assert stats.logp.dtype == torch.float64


def _local_kl() -> np.ndarray:
    """D(h) = Σ_a p(a|h) log p(a|h)/q(a|h) per prefix, summing over p's support only."""
    lp, lq = _log_softmax(_rows(THETA_P)), _log_softmax(_rows(THETA_Q))
    return np.array([np.sum(np.exp(a[a > -np.inf]) * (a[a > -np.inf] - b[a > -np.inf])) for a, b in zip(lp, lq)])


def _numpy_values() -> dict[str, np.ndarray]:
    """Design §2 formulas, per string: u_t = log p(y_t|·) − log q(y_t|·), U = Σ u_t, C = Σ D(h_t)."""
    lp, lq = _log_softmax(_rows(THETA_P)), _log_softmax(_rows(THETA_Q))
    u = np.where(MASK, lp[POS_PREFIX, TOKENS] - lq[POS_PREFIX, TOKENS], 0.0)
    U, C = u.sum(1), np.where(MASK, _local_kl()[POS_PREFIX], 0.0).sum(1)
    return {
        "mc": U,
        "k2": 0.5 * U**2,
        "k3": U + np.expm1(-U),
        "k3_token": np.where(MASK, u + np.expm1(-u), 0).sum(1),
        "rb": C,
    }


@pytest.mark.parametrize("name", ["mc", "k2", "k3", "k3_token", "rb"])
def test_per_sequence_estimators_follow_the_design_formulas(name):
    values = estimate(token_stats(*_torch_inputs()), name).numpy()
    np.testing.assert_allclose(values, _numpy_values()[name], rtol=1e-12, atol=1e-12)
    mean = float(np.sum(W * values))
    if name == "k2":
        assert abs(mean - KL) > 0.05 * KL  # biased
    else:
        assert mean == pytest.approx(KL, abs=1e-12)  # unbiased, by enumeration
    if name in ("rb", "k3", "k3_token", "k2"):
        assert values.min() >= -1e-15  # non-negative per sample


@pytest.mark.parametrize(("name", "base", "bounds"), [("cv_opt", "mc", (0.0, 2.0)), ("rb_cv", "rb", (-1.0, 2.0))])
def test_crossfitted_estimators_use_leave_one_out_coefficients(name, base, bounds):
    """rb_cv: C + λ_i (U − C); cv_opt: U + α_i (e^{−U} − 1); the coefficient of sample i is the least
    squares −b, b = Cov/Var fitted on the other samples only, shrunk by its squared standard error
    (−b · max(0, 1 − se²/b²)) and clipped to the pair's bounds (numpy here); 0 with < 32 others."""
    pick = np.random.default_rng(7).choice(len(PREFIXES), size=40, p=W)  # 39 others per sample
    stats = token_stats(*(x[torch.tensor(pick)] for x in _torch_inputs()))
    got = estimate(stats, name).numpy()
    vals = _numpy_values()
    U, C = vals["mc"][pick], vals["rb"][pick]
    x, z = (C, U - C) if name == "rb_cv" else (U, np.expm1(-U))
    coefs = []
    for i in range(len(pick)):
        o = np.delete(np.arange(len(pick)), i)
        b = np.cov(x[o], z[o])[0, 1] / np.var(z[o], ddof=1)
        resid = (x[o] - x[o].mean()) - b * (z[o] - z[o].mean())
        se2 = np.sum(resid**2) / (len(o) - 2) / np.sum((z[o] - z[o].mean()) ** 2)
        coefs.append(np.clip(-b * max(0.0, 1 - se2 / b**2), *bounds))
        assert got[i] == pytest.approx(x[i] + coefs[-1] * z[i], abs=1e-10)
    assert np.ptp(coefs) > 0 and np.any(np.array(coefs) != 0)  # the fit is active and differs by sample
    few = token_stats(*(x[torch.tensor(pick[:32])] for x in _torch_inputs()))  # 31 others: the base
    torch.testing.assert_close(estimate(few, name), estimate(few, base), rtol=0, atol=0)


def test_summarize_is_mean_stderr_ci():
    values = torch.tensor(_numpy_values()["mc"])
    s = summarize(values)
    x = values.numpy()
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert (s.mean, s.stderr, s.n) == (pytest.approx(x.mean()), pytest.approx(se), len(x))
    assert (s.ci_low, s.ci_high) == (pytest.approx(x.mean() - 1.959964 * se), pytest.approx(x.mean() + 1.959964 * se))
    assert s.frac_negative == pytest.approx(np.mean(x < 0))


def _numeric_grad(f, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        e = np.zeros_like(theta)
        e[idx] = h
        g[idx] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


EXACT_GRAD = _numeric_grad(_kl, THETA_P)  # central differences: error ~1e-10


@pytest.mark.parametrize("form", ["mc_seq", "mc_causal", "rb_paper", "rb_causal", "k3_loss"])
def test_surrogate_values_and_expected_gradients(form):
    theta = torch.tensor(_rows(THETA_P), requires_grad=True)
    lp, lq, tok, mask = _torch_inputs(theta)
    loss = kl_surrogate(lp, lq, tok, mask, form=form)
    # Forward value: the matching value estimator (mc for mc_*, rb for rb_*, k3_token for k3_loss).
    match = {"mc_seq": "mc", "mc_causal": "mc", "rb_paper": "rb", "rb_causal": "rb", "k3_loss": "k3_token"}[form]
    np.testing.assert_allclose(loss.detach().numpy(), _numpy_values()[match], atol=1e-12)
    # Expected gradient Σ_y p(y) ∇ loss(y), weights fixed; forced rows' letter logits are −inf constants.
    (grad,) = torch.autograd.grad((torch.tensor(W) * loss).sum(), theta)
    err = np.abs(grad.numpy() - EXACT_GRAD)[np.isfinite(_rows(THETA_P))].max()
    if form == "k3_loss":
        assert err > 1e-2  # biased (a GRPO-style loss); measured ~0.1 here
    else:
        assert err < 1e-8  # finite-difference accuracy
