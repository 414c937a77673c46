"""`lmkl train` then `lmkl evaluate` with W&B offline: the evaluation lands in the training run's own
summary (the same run id), with estimator, beta and seed at the top of its config; read back from
the offline record files through the SDK's protobuf schema (lmkl.tracking.offline)."""

from __future__ import annotations

import pytest

from lmkl.stages import evaluate as evaluate_stage
from lmkl.stages import train as train_stage
from lmkl.stages.paths import ProfilePaths
from lmkl.tracking.offline import read_run
from test_train_stage import results_root  # noqa: F401  (the module fixture: tiny assets)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_evaluation_in_the_training_runs_summary(results_root, offline):  # noqa: F811
    o = ["profile=tiny", f"profile.results_root={results_root}", "wandb.enabled=true", "wandb.project=lmkl-test",
         "estimator=mc", "beta=0.2", "seed=3", "train.num_prompts=4", "train.micro_batch_size=8",
         "train.num_ppo_epochs=1", "train.max_new_tokens=6", "train.steps=2", "train.checkpoint_every=2"]
    assert train_stage.main(o) == 0
    assert evaluate_stage.main([*o, "evaluate.num_prompts=6", "evaluate.estimators=[mc,rb,k3]"]) == 0
    run_dir = ProfilePaths("tiny", results_root).run_dir("mc", 0.2, 3)
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    back = read_run(run_dir / "wandb", run_id, wait_s=60)  # wandb-core may still be flushing
    assert len(back.files) == 2  # train's record file and evaluate's resume of the same id
    assert (back.name, back.group, back.job_type) == ("tiny/mc_beta0.2_seed3", "tiny-sweep", "train")
    assert (back.config["estimator"], back.config["beta"], back.config["seed"]) == ("mc", 0.2, 3)
    assert back.config["train"]["steps"] == 2 and back.config["profile"]["name"] == "tiny"
    assert [h["_step"] for h in back.history] == [1, 2]  # per-step training metrics
    s = back.summary
    for key in ("eval/reward", "eval/reward_stderr", "eval/n"):
        assert key in s
    for e in ("mc", "rb", "k3"):
        assert {f"eval/kl_{e}", f"eval/kl_{e}_stderr", f"eval/kl_{e}_frac_negative"} <= set(s)
    assert s["eval/n"] == 6 and s["eval/kl_rb"] >= 0 and s["eval/kl_rb_frac_negative"] == 0
    assert "train/reward" in s  # the training metrics' last values survive the resume
