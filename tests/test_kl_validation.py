"""Bad input to lmkl.kl raises ValueError naming the argument; summarize's arithmetic is scipy's."""

from __future__ import annotations

import math

import pytest
import torch

from lmkl.kl import estimate, kl_surrogate, summarize, token_stats

B, T, V = 2, 3, 5  # batch, positions, vocabulary


def _ok():
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(B, T, V, generator=g),
        torch.randn(B, T, V, generator=g),
        torch.randint(0, V, (B, T), generator=g),
        torch.ones(B, T, dtype=torch.bool),
    )


def _replace(i, value):
    args = list(_ok())
    args[i] = value(args[i]) if callable(value) else value
    return args


BAD = {
    # case: (argument index, replacement, name expected in the message)
    "p_not_3d": (0, lambda x: x[0], "logits_p"),
    "q_not_tensor": (1, lambda x: x.tolist(), "logits_q"),
    "p_integer": (0, lambda x: x.long(), "logits_p"),
    "shape_mismatch": (1, lambda x: x[:, :2], "logits_q"),
    "vocab_mismatch": (1, lambda x: x[..., :4], "logits_q"),
    "tokens_shape": (2, lambda x: x[:, :2], "tokens"),
    "tokens_float": (2, lambda x: x.float(), "tokens"),
    "tokens_above_vocab": (2, lambda x: torch.full_like(x, V), "tokens"),
    "tokens_negative": (2, lambda x: torch.full_like(x, -1), "tokens"),
    "mask_not_bool": (3, lambda x: x.long(), "mask"),
    "mask_shape": (3, lambda x: x[:1], "mask"),
    "nan_logit_p": (0, lambda x: x.index_put((torch.tensor(1), torch.tensor(2)), torch.tensor(float("nan"))), "logits_p"),
    "nan_logit_q": (1, lambda x: x.index_put((torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"))), "logits_q"),
    "all_ninf_p": (0, lambda x: x.index_put((torch.tensor(0), torch.tensor(1)), torch.tensor(float("-inf"))), "logits_p"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("fn", ["token_stats", "kl_surrogate"])
def test_bad_input_raises_value_error_naming_the_argument(case, fn):
    i, value, name = BAD[case]
    args = _replace(i, value)
    call = token_stats if fn == "token_stats" else kl_surrogate
    with pytest.raises(ValueError, match=name):
        call(*args)


def test_nan_error_names_the_position():
    lp, lq, tok, mask = _ok()
    lp[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"logits_p.*batch 1, position 2"):
        token_stats(lp, lq, tok, mask)


def test_nan_at_a_masked_position_is_fine():
    lp, lq, tok, mask = _ok()
    lp[1, 2] = float("nan")
    mask[1, 2] = False
    assert torch.isfinite(token_stats(lp, lq, tok, mask).kl).all()


def test_unknown_names():
    stats = token_stats(*_ok())
    with pytest.raises(ValueError, match="estimator"):
        estimate(stats, "k4")
    with pytest.raises(ValueError, match="stats"):
        estimate(stats.kl, "rb")
    with pytest.raises(ValueError, match="form"):
        kl_surrogate(*_ok(), form="rb")
    with pytest.raises(ValueError, match="backend"):
        token_stats(*_ok(), backend="nope")
    with pytest.raises(ValueError, match="folds"):
        estimate(stats, "rb_cv", folds=1)


@pytest.mark.parametrize(("name", "base"), [("rb_cv", "rb"), ("cv_opt", "mc")])
def test_crossfitted_with_one_sample_is_the_base_estimator(name, base):
    """M = 1: nothing to fit the coefficient on, so it is 0 and the value is the base estimator's."""
    lp, lq, tok, mask = _ok()
    stats = token_stats(lp[:1], lq[:1], tok[:1], mask[:1])
    torch.testing.assert_close(estimate(stats, name), estimate(stats, base), rtol=0, atol=1e-6)


def test_summarize_uses_n_minus_1_and_the_normal_95_interval():
    x = torch.tensor([1.0, 2.0, 4.0, -3.0])
    s = summarize(x)
    mean = 1.0
    sd = math.sqrt(((0.0) ** 2 + 1.0**2 + 3.0**2 + 4.0**2) / 3)  # n − 1 = 3
    assert s.mean == pytest.approx(mean)
    assert s.stderr == pytest.approx(sd / 2)  # √n = 2
    z = 1.959963984540054  # Φ⁻¹(0.975)
    assert s.ci_low == pytest.approx(mean - z * sd / 2)
    assert s.ci_high == pytest.approx(mean + z * sd / 2)
    assert (s.n, s.frac_negative) == (4, 0.25)


def test_summarize_bad_values():
    with pytest.raises(ValueError, match="values"):
        summarize(torch.tensor([]))
    with pytest.raises(ValueError, match="values"):
        summarize(torch.tensor([1.0, float("nan")]))
    assert math.isnan(summarize(torch.tensor([2.0])).stderr)  # n = 1: undefined, not 0


def test_pool_over_prompts_is_the_mean_of_means_with_independent_errors():
    from lmkl.kl import pool_over_prompts

    a = summarize(torch.tensor([1.0, 3.0]))  # mean 2, se 1, one of 2 negative: none
    b = summarize(torch.tensor([-1.0, 0.0, 4.0, 1.0]))  # mean 1, one of 4 negative
    pooled = pool_over_prompts([a, b])
    assert pooled.mean == pytest.approx(1.5)
    assert pooled.stderr == pytest.approx(math.sqrt(a.stderr**2 + b.stderr**2) / 2)
    assert (pooled.n, pooled.frac_negative) == (6, pytest.approx(1 / 6))
    assert pooled.ci_high - pooled.mean == pytest.approx(1.959963984540054 * pooled.stderr)
    with pytest.raises(ValueError, match="per_prompt"):
        pool_over_prompts([])
