"""`lmkl report` on synthetic stage outputs (tests/pipeline_outputs.py): claims.md/.csv, the captions of the
Snakemake report, and the profile's W&B report run read back from its offline record files."""

from __future__ import annotations

import pandas as pd
import pytest

from lmkl.stages import aggregate, figures, report
from lmkl.studies.claims import CLAIMS
from lmkl.tracking.offline import read_run
from pipeline_outputs import SWEEP_OVERRIDES, write_profile


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_profile(root)
    o = [f"profile.results_root={root}", f"profile.figures_root={root / 'figures'}", "wandb.enabled=false", *SWEEP_OVERRIDES]
    assert aggregate.main(o) == 0 and figures.main(o) == 0
    return root, o


def test_report_writes_claims_and_captions(made, monkeypatch):
    import docutils.core

    root, o = made
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert report.main([*o[:-3], "wandb.enabled=true", "wandb.project=lmkl-test", *SWEEP_OVERRIDES, "report.n_boot=200"]) == 0
    fig = root / "figures" / "tiny"
    claims = pd.read_csv(fig / "claims.csv")
    assert list(claims["id"]) == [c.id for c in CLAIMS]
    # pipeline_outputs: every rb run dominates the mc run of its β and seed, but with 2 seeds the seed
    # bootstrap gives no interval (claims_bootstrap.MIN_SEEDS): the training claims stay inconclusive
    v = claims.set_index("id")["verdict"]
    assert claims.set_index("id").loc["P4b", "value"] == 1.0
    assert v["P4a"] == "inconclusive" and v["P4b"] == "inconclusive" and v["P3b"] == "inconclusive"
    text = (fig / "claims.md").read_text()
    assert text.startswith("# Claims — profile tiny") and "200 resamples" in text
    for name in [*report.FIGURES, "claims"]:
        rst = (fig / "report" / f"{name}.rst").read_text()
        docutils.core.publish_string(rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 5})
    back = read_run(root / "tiny" / "wandb", "report-tiny", wait_s=60)
    assert back.job_type == "report" and back.summary["claims/P4a/verdict"] == "inconclusive"
    assert back.summary["claims/_type"] == "table-file" and back.summary["claims/nrows"] == len(CLAIMS)
    assert {f"figures/{n}/_type" for n in report.FIGURES} <= set(back.summary)


def test_report_needs_the_tables(tmp_path, capsys):
    assert report.main([f"profile.results_root={tmp_path}", "wandb.enabled=false"]) == 1
    assert "runs.csv not found" in capsys.readouterr().err


def test_report_refuses_too_few_resamples(made, capsys):
    _, o = made
    assert report.main([*o, "report.n_boot=10"]) == 2
    assert "report.n_boot" in capsys.readouterr().err


def test_static_report_captions_are_clean_restructuredtext():
    # report/*.rst and report/tables/*.rst: the captions of `snakemake --report` (no docutils warning)
    import io
    from pathlib import Path

    import docutils.core

    files = sorted(Path("report").rglob("*.rst"))
    assert files
    for f in files:
        err = io.StringIO()
        text = f.read_text().replace('{{ snakemake.config.get("profile", "tiny") }}', "tiny")  # the Jinja2 part
        docutils.core.publish_string(text, writer="html", settings_overrides={"warning_stream": err, "report_level": 2})
        assert not err.getvalue(), (f, err.getvalue())
