"""Known-answer checks of the variance study's summary (the numbers behind the variance figure/table)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lmkl.studies.variance import summarize_estimates


def test_summary_statistics_on_a_hand_built_table():
    # 2 prompts × 3 repetitions of one estimator at M = 4; truths 1.0 ± 0.1 and 2.0 ± 0.2.
    est = pd.DataFrame(
        {
            "prompt": [0, 0, 0, 1, 1, 1],
            "estimator": ["mc"] * 6,
            "M": [4] * 6,
            "repetition": [0, 1, 2, 0, 1, 2],
            "estimate": [0.0, 1.0, 2.0, -1.0, 2.0, 5.0],
        }
    )
    truth = pd.DataFrame({"prompt": [0, 1], "truth": [1.0, 2.0], "truth_stderr": [0.1, 0.2]})
    row = summarize_estimates(est, truth).set_index(["estimator", "M"]).loc[("mc", 4)]
    assert row["std"] == pytest.approx((1.0 + 3.0) / 2)  # per-prompt sample std (ddof 1), averaged
    assert row["bias"] == pytest.approx(((1.0 - 1.0) + (2.0 - 2.0)) / 2)
    assert row["truth_stderr"] == pytest.approx(math.sqrt(0.1**2 + 0.2**2) / 2)  # se of the truth average
    assert row["frac_negative"] == pytest.approx(1 / 6)
    assert row["max_abs"] == 5.0
    errors = [-1.0, 0.0, 1.0, -3.0, 0.0, 3.0]
    assert row["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 6))
    assert (row["n_estimates"], row["prompts"], row["repetitions"]) == (6, 2, 3)


def test_bias_stderr_combines_the_estimates_noise_with_the_truths():
    """On the hand-built table: per prompt std²/R + truth_se², summed, square root, over P."""
    est = pd.DataFrame(
        {"prompt": [0, 0, 0, 1, 1, 1], "estimator": ["mc"] * 6, "M": [4] * 6,
         "repetition": [0, 1, 2, 0, 1, 2], "estimate": [0.0, 1.0, 2.0, -1.0, 2.0, 5.0]}
    )  # fmt: skip
    truth = pd.DataFrame({"prompt": [0, 1], "truth": [0.5, 2.5], "truth_stderr": [0.1, 0.2]})
    row = summarize_estimates(est, truth).set_index(["estimator", "M"]).loc[("mc", 4)]
    se = math.sqrt(1.0**2 / 3 + 0.1**2 + 3.0**2 / 3 + 0.2**2) / 2
    assert row["bias"] == pytest.approx(((1.0 - 0.5) + (2.0 - 2.5)) / 2)
    assert row["bias_stderr"] == pytest.approx(se)
    assert row["bias_z"] == pytest.approx(row["bias"] / se)


def test_an_unbiased_estimator_is_not_flagged():
    """Zero bias by construction: estimates ~ N(KL_p, 1) per prompt, truths ~ N(KL_p, 0.05²), P = 8,
    R = 32, over 300 simulated studies. |bias_z| > 1.96 should happen in 5 % of them; the binomial
    sd of that share over 300 studies is 1.3 %, so [1 %, 10 %] is a ≥ 3 sd window. Judged against
    the truth's stderr alone (the old check) the same studies look biased most of the time."""
    rng = np.random.default_rng(0)
    P, R, S = 8, 32, 300
    kl = np.tile(rng.uniform(0.5, 3.0, size=P), S)  # [S·P]: study s has prompts s·P .. s·P + P − 1
    # All studies in one table: study s is "M = s", its prompts have their own ids (and truths).
    est = pd.DataFrame(
        {"prompt": np.repeat(np.arange(S * P), R), "estimator": "rb", "M": np.repeat(np.arange(S), P * R),
         "repetition": np.tile(np.arange(R), S * P), "estimate": np.repeat(kl, R) + rng.normal(size=S * P * R)}
    )  # fmt: skip
    truth = pd.DataFrame({"prompt": np.arange(S * P), "truth": kl + 0.05 * rng.normal(size=S * P), "truth_stderr": 0.05})
    summ = summarize_estimates(est, truth)
    assert len(summ) == S and (summ["prompts"] == P).all()
    z_new, z_old = summ["bias_z"].to_numpy(), (summ["bias"] / summ["truth_stderr"]).to_numpy()
    flagged = np.mean(np.abs(z_new) > 1.96)
    assert 0.01 <= flagged <= 0.10
    assert np.mean(np.abs(z_old) > 1.96) > 0.5  # std/√R = 0.18 ≫ 0.05: the old check cries bias
