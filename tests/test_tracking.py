"""W&B offline runs read back through the SDK's record schema (lmkl.tracking.offline)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lmkl import tracking
from lmkl.tracking.offline import read_run, record_bytes


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_resumed_run_merges_training_and_evaluation(tmp_path):
    config = {"estimator": "rb", "beta": 0.1, "seed": 2, "train": {"steps": 3}}
    init = {"project": "lmkl-test", "name": "tiny/rb_beta0.1_seed2", "group": "tiny-sweep", "job_type": "train",
            "dir": tmp_path}
    run = tracking.start_run(config=config, tags=["rb"], **init)
    run_id = run.id
    for step in (1, 2, 3):
        run.log({"train/reward": 0.1 * step}, step=step)
    run.finish()
    tracking.update_summary(run_id=run_id, summary={"eval/reward": 0.5, "eval/kl_rb": 0.25, "eval/kl_rb_stderr": 0.01},
                            config={"estimator": "rb", "beta": 0.1, "seed": 2}, **init)
    back = read_run(tmp_path, wait_s=60)  # wandb-core may still be flushing
    assert back.complete and back.run_id == run_id and len(back.files) == 2  # the resume: a second file, same id
    assert (back.name, back.group, back.job_type, back.tags) == ("tiny/rb_beta0.1_seed2", "tiny-sweep", "train", ["rb"])
    assert back.config["estimator"] == "rb" and back.config["beta"] == 0.1 and back.config["seed"] == 2
    assert back.config["train"] == {"steps": 3}
    assert back.summary["eval/reward"] == 0.5 and back.summary["eval/kl_rb_stderr"] == 0.01
    assert back.summary["train/reward"] == pytest.approx(0.3)  # the last logged step survives the resume
    assert [h["_step"] for h in back.history] == [1, 2, 3]


def test_report_run_holds_images_and_the_claims_table(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    png = tmp_path / "pareto.png"
    fig.savefig(png)
    claims = pd.DataFrame({"id": ["P1", "P4a"], "verdict": ["reproduced", "inconclusive"], "value": [0.3, 0.6]})
    run_id = tracking.log_report(
        project="lmkl-test", profile="tiny", dir=tmp_path / "report", images={"figures/pareto": (png, "the front")},
        table_name="claims", table=claims, summary={"claims/P1/verdict": "reproduced"}, config={"profile": {"name": "tiny"}},
    )
    back = read_run(tmp_path / "report", wait_s=60)
    assert back.run_id == run_id == "report-tiny" and back.job_type == "report" and back.group == "tiny"
    assert back.summary["claims/P1/verdict"] == "reproduced"
    assert back.summary["figures/pareto/_type"] == "image-file" and back.summary["figures/pareto/caption"] == "the front"
    assert back.summary["claims/_type"] == "table-file" and back.summary["claims/nrows"] == 2
    run_dir = back.files[0].parent
    table = json.loads((run_dir / "files" / back.summary["claims/path"]).read_text())
    assert table["columns"] == ["id", "verdict", "value"]
    assert table["data"] == [["P1", "reproduced", 0.3], ["P4a", "inconclusive", 0.6]]
    assert (run_dir / "files" / back.summary["figures/pareto/path"]).is_file()


def test_reader_refuses_other_files(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a record log")
    with pytest.raises(ValueError, match="not a W&B record file"):
        list(record_bytes(bad))
    with pytest.raises(FileNotFoundError):
        read_run(tmp_path / "empty", run_id="abc")
