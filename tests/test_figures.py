"""Aggregate + figures from synthetic stage outputs with known numbers, and the Pareto front."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lmkl.stages import aggregate, figures
from lmkl.studies.pareto import front_share, pareto_front
from pipeline_outputs import BETAS, ESTIMATORS, SEEDS, SWEEP_OVERRIDES, final_point, write_profile


def test_pareto_front_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        kl, rw = rng.integers(0, 5, 12).astype(float), rng.integers(0, 5, 12).astype(float)  # many ties
        front = pareto_front(kl, rw)
        for i in range(12):
            dominated = any(kl[j] <= kl[i] and rw[j] >= rw[i] and (kl[j] < kl[i] or rw[j] > rw[i]) for j in range(12))
            assert front[i] == (not dominated)


def test_pareto_front_ignores_nan_and_shares_sum_to_one():
    front = pareto_front([1.0, float("nan"), 2.0], [0.5, 9.0, 0.4])
    assert front.tolist() == [True, False, False]
    share = front_share(["rb", "mc", "rb", "mc"], [True, True, True, False])
    assert share == {"mc": pytest.approx(1 / 3), "rb": pytest.approx(2 / 3)}
    assert all(math.isnan(v) for v in front_share(["rb"], [False]).values())


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_profile(root)
    o = [f"profile.results_root={root}", f"profile.figures_root={root / 'figures'}", "wandb.enabled=false", *SWEEP_OVERRIDES]
    assert aggregate.main(o) == 0
    assert figures.main(o) == 0
    return root


def test_aggregate_tables(made):
    t = made / "tiny" / "tables"
    runs = pd.read_csv(t / "runs.csv")
    assert len(runs) == len(ESTIMATORS) * len(BETAS) * len(SEEDS)
    for r in runs.itertuples():
        assert (r.kl_rb, r.reward) == pytest.approx(final_point(r.estimator, r.beta, r.seed))
    # by construction every rb run dominates the mc run of the same beta and seed, and rb runs do not
    # dominate each other (higher β: lower KL and lower reward): the front is exactly the rb runs
    assert runs.set_index("run")["on_front"].to_dict() == {r.run: r.estimator == "rb" for r in runs.itertuples()}
    share = pd.read_csv(t / "pareto_share.csv").set_index("estimator")["share"]
    assert share.to_dict() == {"mc": 0.0, "rb": 1.0}
    curves = pd.read_csv(t / "training.csv")
    assert {"step", "reward", "kl_rb", "run", "estimator", "beta", "seed"} <= set(curves.columns)
    vt = pd.read_csv(t / "variance_table.csv")
    assert set(vt.estimator) == {"mc", "rb", "k3"} and (vt.n_policies == len(runs)).all()


def test_every_figure_in_png_and_pdf_with_a_caption_from_the_tables(made):
    f = made / "figures" / "tiny"
    for name in ("variance", "training_curves", "pareto", "gradient_variance", "oracle"):
        assert (f / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (f / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (f / f"{name}.md").read_text().startswith(f"# {name}")
    assert "rb 100 % (4 of 4 front points" in (f / "pareto.md").read_text()
    vt = pd.read_csv(made / "tiny" / "tables" / "variance_table.csv").set_index(["estimator", "M"])
    assert f"{vt.loc[('rb', 4), 'std']:.3g}" in (f / "variance_table.md").read_text()
    oracle = (f / "oracle.md").read_text()
    assert "mc 3.316" in oracle and "rb 5.07" in oracle  # exact counterexample variances, computed
    assert "Counterexample rb_cv/rb: M=2 1," in oracle  # the cross-fitted sweep (third panel): rb below 32 samples


def test_figures_refuse_missing_tables(tmp_path, capsys):
    assert figures.main([f"profile.results_root={tmp_path}", "wandb.enabled=false"]) == 1
    assert "tables/variance_table.csv" in capsys.readouterr().err
