"""The claims report on synthetic tables whose verdicts are known by construction.

Three worlds: `rb_wins` (every claim of the paper holds by a wide margin), `rb_loses` (each fails by
a wide margin) and `mixed` (the evidence points both ways, so the intervals straddle the threshold).
The numbers are built from fixed ±1 patterns, so stds, shares and ratios are exact and the verdicts
do not depend on a random draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmkl.stages.paths import run_name
from lmkl.studies.claims import (
    CLAIMS,
    CLAIMS_BY_ID,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    verdict,
)
from lmkl.studies.claims_report import claims_frame, claims_markdown, evaluate_claims, write_claims
from lmkl.studies.oracle import gradient_oracle, toy_pairs, value_oracle

BETAS, SEEDS, PROMPTS, REPS = [0.02, 0.1, 0.5], [0, 1, 2], 4, 16
FORMS = ["mc_seq", "mc_causal", "rb_paper", "rb_causal", "k3_loss"]
PM = np.where(np.arange(REPS) % 2 == 0, 1.0, -1.0)  # ±1: mean 0, std (ddof 1) √(R/(R−1))


def runs_and_training(world: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """rb_wins: each rb run has lower KL, higher reward and a smoother KL curve than its mc pair;
    rb_loses: the reverse; mixed: seed 0 favours rb, seed 1 mc, seed 2 neither (equal runs)."""
    runs, curves = [], []
    for b in BETAS:
        for s in SEEDS:
            edge = {"rb_wins": 1, "rb_loses": -1, "mixed": {0: 1, 1: -1, 2: 0}[s]}[world]  # +1: rb better
            for e in ("mc", "rb"):
                better = (e == "rb") == (edge > 0) if edge else False
                kl = (1.0 / b) * (0.7 if better else 1.0)
                reward = 1 - 0.5 / kl + 0.001 * s + (0.3 if better else 0.0)  # a trade-off across β
                name = run_name(e, b, s)
                runs.append({"run": name, "estimator": e, "beta": b, "seed": s, "reward": reward, "kl_rb": kl,
                             "kl_frac_negative_rb": 0.0, "kl_frac_negative_mc": 0.3})
                steps = np.arange(1, 21)
                wiggle = (0.01 if better else 0.05) * np.where(steps % 2 == 0, 1.0, -1.0)
                curves.append(pd.DataFrame({"step": steps, "kl_rb": kl * steps / 20 + wiggle, "run": name,
                                            "estimator": e, "beta": b, "seed": s}))
    return pd.DataFrame(runs), pd.concat(curves, ignore_index=True)


def variance(world: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Estimates mean_u + scale / √M · (±1). rb_wins: rb's scale 0.1, the baselines' 1, mc negative half
    the time at M = 1; rb_loses: rb's scale 2 (negative values), mc's 0.1 (never negative); mixed:
    rb's scale 0.5 or 1.5 by unit against 1 (ratio 1 overall), mc negative at M = 1 in one unit of 4."""
    rows = []
    units = [(p, i) for p in runs["run"] for i in range(PROMPTS)]
    for k, (policy, prompt) in enumerate(units):
        for e in ("mc", "k2", "k3", "k3_token", "rb"):
            mean = 0.5
            if world == "rb_wins":
                scale = 0.1 if e == "rb" else 1.0
            elif world == "rb_loses":
                scale = {"rb": 2.0, "mc": 0.1}.get(e, 1.0)
            else:
                scale = (0.5 if k % 2 else 1.5) if e == "rb" else 1.0
                mean = 0.5 if (e != "mc" or k % 4 == 0) else 5.0
                if e == "rb":
                    mean = 5.0  # rb never negative here
            for m in (1, 4):
                for r in range(REPS):
                    rows.append({"policy": policy, "prompt": prompt, "estimator": e, "M": m, "repetition": r,
                                 "estimate": mean + scale / np.sqrt(m) * PM[r]})
    return pd.DataFrame(rows)


def gradients(world: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """‖ĝ_r‖² = c + V_f / M · (1 ± ½): the form's total variance V_f / M exactly; rb_causal lowest in rb_wins."""
    v = {"mc_seq": 4.0, "mc_causal": 3.0, "rb_paper": 2.0, "rb_causal": 1.0 if world != "rb_loses" else 5.0, "k3_loss": 0.5}
    c, point, reps, summ = 2.0, "rb_beta0.02_seed0", [], []
    for p_name, scale in (("reference", 0.0), (point, 1.0)):
        for f in FORMS:
            for m in (1, 4):
                var = scale * v[f] / m
                reps += [{"point": p_name, "form": f, "M": m, "repetition": r, "sq_norm": scale * c + var * (1 + 0.5 * PM[r])}
                         for r in range(REPS)]
                summ.append({"point": p_name, "form": f, "M": m, "total_variance": var, "repetitions": REPS,
                             "mean_norm": float(np.sqrt(scale * c + var / REPS))})
    return pd.DataFrame(summ), pd.DataFrame(reps)


def tables(world: str) -> dict[str, pd.DataFrame]:
    runs, training = runs_and_training(world)
    summ, reps = gradients(world)
    toys = toy_pairs(2)
    oracle_values = pd.DataFrame(value_oracle(toys, ["mc", "rb"], 2))
    if world == "rb_loses":  # pretend the counterexample did not exist: Var(rb) < Var(mc) there too
        ce = oracle_values["toy"] == "counterexample"
        oracle_values.loc[ce & (oracle_values["estimator"] == "rb"), "var"] = 0.5 * oracle_values.loc[ce & (oracle_values["estimator"] == "mc"), "var"].item()
    oracle_gradients = pd.DataFrame(gradient_oracle(toys, ["mc_seq", "rb_causal", "k3_loss"]))
    if world == "rb_loses":  # pretend k3_loss were unbiased
        oracle_gradients.loc[oracle_gradients["form"] == "k3_loss", "rel_bias"] = 1e-13
    return {
        "runs.csv": runs, "training.csv": training, "variance.parquet": variance(world, runs),
        "oracle_values.csv": oracle_values, "oracle_gradients.csv": oracle_gradients,
        "gradient_variance.csv": summ, "gradient_repetitions.parquet": reps,
    }


@pytest.fixture(scope="module")
def decided():
    return {w: {r.claim.id: r for r in evaluate_claims(tables(w), seed=0, n_boot=400)} for w in ("rb_wins", "rb_loses", "mixed")}


def test_every_claim_reproduced_when_rb_wins(decided):
    got = {k: r.verdict for k, r in decided["rb_wins"].items()}
    assert got == {c.id: REPRODUCED for c in CLAIMS}
    r = decided["rb_wins"]
    assert r["P1"].value == pytest.approx(0.1)  # std ratio rb / every baseline, exactly
    assert r["P2b"].value == pytest.approx(0.5)  # mc = 0.5 ± 1: negative every other repetition at M = 1
    assert r["P3b"].value == pytest.approx(np.log(0.7))
    assert r["P4a"].value == 1.0 and r["P4b"].value == 1.0
    assert r["O2"].value == pytest.approx(0.5)  # V(rb_causal) / V(rb_paper), the closest unbiased form
    assert r["O1"].value > 1  # the exact counterexample


def test_every_claim_not_reproduced_when_rb_loses(decided):
    got = {k: r.verdict for k, r in decided["rb_loses"].items()}
    assert got == {c.id: NOT_REPRODUCED for c in CLAIMS}
    r = decided["rb_loses"]
    assert r["P1"].value == pytest.approx(20.0)  # std(rb) / std(mc) = 2 / 0.1
    assert r["P2a"].value == pytest.approx(0.5)  # 0.5 ± 2: every other rb estimate at M = 1 and 4 negative
    assert r["P2b"].value == 0.0
    assert r["O2"].value == pytest.approx(2.5)


def test_mixed_evidence_is_inconclusive(decided):
    r = decided["mixed"]
    for cid in ("P1", "P2b", "P3a", "P3b", "P4b"):
        assert r[cid].verdict == INCONCLUSIVE, (cid, r[cid].value, r[cid].ci_low, r[cid].ci_high)
        assert r[cid].ci_low < r[cid].value < r[cid].ci_high or r[cid].ci_low <= r[cid].value <= r[cid].ci_high
    assert r["P1"].value == pytest.approx(1.0)  # mean rb std (0.5 + 1.5) / 2 = the baselines' 1
    assert r["P3b"].value == pytest.approx(0.0)  # log 0.7, −log 0.7 and 0 over the three seeds
    assert r["P2a"].verdict == REPRODUCED  # rb = 5 ± 1.5 never negative


def test_single_seed_gives_no_interval():
    t = tables("rb_wins")
    for name in ("runs.csv", "training.csv"):
        t[name] = t[name][t[name]["seed"] == 0]
    r = {x.claim.id: x for x in evaluate_claims(t, seed=0, n_boot=200)}
    for cid in ("P3a", "P3b", "P4a", "P4b"):
        assert np.isnan(r[cid].ci_low) and r[cid].verdict == INCONCLUSIVE


def test_verdict_rule_per_relation():
    c = Claim("X", "ours", "x", "s", "seeds", "<", 1.0)
    assert verdict(c, 0.2, 0.9) == REPRODUCED
    assert verdict(c, 1.0, 3.0) == NOT_REPRODUCED  # 1 is not < 1
    assert verdict(c, 0.5, 1.5) == INCONCLUSIVE
    assert verdict(c, float("nan"), 0.5) == INCONCLUSIVE
    c0 = Claim("Y", "paper", "y", "s", "exact", "<=", 0.0)
    assert verdict(c0, 0.0, 0.0) == REPRODUCED and verdict(c0, 1e-3, 1e-3) == NOT_REPRODUCED
    g = Claim("Z", "paper", "z", "s", "seeds", ">", 0.5)
    assert verdict(g, 0.6, 0.9) == REPRODUCED and verdict(g, 0.1, 0.5) == NOT_REPRODUCED and verdict(g, 0.4, 0.6) == INCONCLUSIVE
    assert "inconclusive if it contains 0.5" in g.rule
    with pytest.raises(ValueError, match="relation"):
        Claim("W", "ours", "w", "s", "seeds", "!=", 0.0)


def test_claims_files(decided, tmp_path):
    results = list(decided["mixed"].values())
    md, csv = write_claims(results, tmp_path / "figs", title="Claims — test")
    text = md.read_text()
    assert text.startswith("# Claims — test")
    for c in CLAIMS:
        assert f"**{c.id}**" in text
    assert "78 %" in text and "inconclusive" in text and "rule:" in text
    df = pd.read_csv(csv)
    assert list(df["id"]) == [c.id for c in CLAIMS]
    assert df.set_index("id").loc["P1", "verdict"] == INCONCLUSIVE
    assert claims_frame(results).shape[0] == len(CLAIMS)
    assert claims_markdown(results, "t").count("\n| **") == len(CLAIMS)
    assert not list((tmp_path / "figs").glob(".*tmp*"))  # atomic writes leave no temporary file


def test_incomplete_variance_study_is_refused():
    t = tables("rb_wins")
    t["variance.parquet"] = t["variance.parquet"].iloc[1:]  # one estimate missing
    with pytest.raises(ValueError, match="no estimate"):
        evaluate_claims(t, n_boot=200)


def test_claim_ids_unique():
    assert len(CLAIMS_BY_ID) == len(CLAIMS)


def test_claims_rst_is_valid_restructuredtext(decided):
    # the caption of claims.csv in the Snakemake report: docutils must parse it without a warning
    import docutils.core

    from lmkl.studies.claims_report import claims_rst

    text = claims_rst(list(decided["mixed"].values()), "Claims of profile tiny_x")
    html = docutils.core.publish_string(text, writer="html", settings_overrides={"halt_level": 2, "report_level": 5})
    assert b"k3_token" in html and html.count(b"inconclusive") >= 5
