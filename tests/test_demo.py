"""`lmkl demo` prints, for each pair, the exact KL and a table whose exact columns are the oracle's."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from lmkl.cli import main as cli_main
from lmkl.demo import pairs
from lmkl.exact import estimator_moments, exact_kl
from lmkl.kl import CROSSFITTED, ESTIMATORS, UNBIASED

R, M = 60, 16  # batches, strings per batch: small enough for ~1 s


def _tables(out: str) -> dict[str, tuple[float, dict[str, list[str]]]]:
    """{pair name: (printed KL, {estimator: [mean, stderr, var, ratio, frac_negative]})}."""
    tables = {}
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        name = lines[0].removeprefix("== ")
        kl = float(re.search(r"exact KL\(p\|\|q\) = ([0-9.]+)", lines[1]).group(1))
        rows = {}
        for line in lines[3:]:
            cells = line.replace("†", " ").split()
            if cells and cells[0].rstrip("*") in ESTIMATORS:
                rows[cells[0].rstrip("*")] = cells[1:]
        tables[name] = (kl, rows)
    return tables


@pytest.fixture(scope="module")
def printed():
    """The demo's stdout, run once through the CLI (capsys is function-scoped, hence redirect_stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["demo", "--batches", str(R), "--batch-size", str(M), "--seed", "3"]) == 0
    return buf.getvalue()


def test_demo_table_matches_exact_values(printed):
    tables = _tables(printed)
    assert set(tables) == set(pairs())
    for name, (p, q) in pairs().items():
        kl_printed, rows = tables[name]
        kl = float(exact_kl(p, q))
        assert kl_printed == pytest.approx(kl, abs=5e-7)  # printed with 6 decimals
        assert set(rows) == set(ESTIMATORS)
        var_mc = estimator_moments(p, q, "mc").var
        for est, (mean, stderr, var, ratio, frac_neg) in rows.items():
            if est not in CROSSFITTED:  # exact columns: equal to the oracle up to the printed digits
                exact_var = estimator_moments(p, q, est).var
                assert float(var) == pytest.approx(exact_var, abs=5e-5)
                assert float(ratio) == pytest.approx(exact_var / var_mc, abs=5e-4)
            if est in UNBIASED:
                # Seeded, so deterministic; R = 60 batch means are near normal, and 5 standard errors
                # (two-sided 6e-7 under normality, per entry) keeps this from flaking under a new seed.
                assert abs(float(mean) - kl) < 5 * float(stderr) + 1e-4
            assert 0.0 <= float(frac_neg) <= 1.0
        assert float(rows["rb"][4]) == 0.0  # rb is a sum of KLs: never negative
        assert float(rows["mc"][3]) == 1.0


def test_demo_counterexample_shows_rb_losing_to_mc(printed):
    _, rows = _tables(printed)["counterexample (paper-digest §3.2)"]
    assert float(rows["rb"][3]) == pytest.approx(5.0697 / 3.3159, abs=5e-4)


def test_demo_footnote_explains_the_crossfitted_variance(printed):
    assert printed.count("† cross-fitted") == len(pairs())
    assert "rb_cv 2.9446 (0.888 × mc)" in printed  # the oracle λ* on the counterexample, digest: 2.945


def test_demo_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli_main(["demo", "--batches", "1"])
    assert "--batches" in capsys.readouterr().err
