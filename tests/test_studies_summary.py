"""Known-answer checks of the variance study's summary (the numbers behind the variance figure/table)."""

from __future__ import annotations

import math

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
