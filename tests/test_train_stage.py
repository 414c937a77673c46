"""`lmkl train` / `lmkl evaluate` end to end on tiny assets in a temporary results root (VADER reward)."""

from __future__ import annotations

import json

import pytest

from lmkl.assets.prompts import write_prompts
from lmkl.assets.testing import record_handmade_assets
from lmkl.models.testing import CORPUS, build_tiny_gpt2, build_tiny_tokenizer
from lmkl.rloo import COLUMNS, read_metrics
from lmkl.stages import evaluate as evaluate_stage
from lmkl.stages import train as train_stage
from lmkl.stages.paths import ProfilePaths


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    paths = ProfilePaths("tiny", root)
    tok = build_tiny_tokenizer(root / "tok")
    from transformers import AutoTokenizer

    V = len(AutoTokenizer.from_pretrained(tok, local_files_only=True))
    build_tiny_gpt2(paths.policy, vocab_size=V, seed=0, tokenizer_dir=tok)
    prompts = [" ".join(s.split()[:3]) for s in CORPUS]
    write_prompts(paths.prompts_train, prompts)
    write_prompts(paths.prompts_test, prompts[::-1])
    record_handmade_assets(paths.assets)  # consumers refuse assets the manifest does not vouch for
    return root


def args(root, *extra):
    return ["profile=tiny", f"profile.results_root={root}", "wandb.enabled=false",
            "estimator=rb", "beta=0.1", "seed=0", "train.num_prompts=4", "train.micro_batch_size=8",
            "train.num_ppo_epochs=1", "train.max_new_tokens=6", "train.checkpoint_every=2", *extra]


def test_train_resume_extend_refuse_evaluate(results_root, capsys):
    paths = ProfilePaths("tiny", results_root)
    run = paths.run_dir("rb", 0.1, 0)
    assert train_stage.main(args(results_root, "train.steps=3")) == 0
    assert [r["step"] for r in read_metrics(run / "metrics.csv")] == [1, 2, 3]
    assert train_stage.main(args(results_root, "train.steps=5")) == 0  # continues from step 3
    rows = read_metrics(run / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == list(COLUMNS)
    assert (run / "model" / "config.json").is_file()
    assert train_stage.main(args(results_root, "train.steps=5")) == 0  # complete: nothing to do

    capsys.readouterr()
    assert train_stage.main(args(results_root, "train.steps=5", "train.lr=1e-3")) == 1
    err = capsys.readouterr().err
    assert "rloo.lr" in err and "train.overwrite=true" in err

    assert evaluate_stage.main(args(results_root, "evaluate.num_prompts=6", "evaluate.n_per_prompt=2")) == 0
    out = json.loads((run / "eval.json").read_text())
    assert out["n"] == 12 and out["max_new_tokens"] == 6
    assert set(out["kl"]) == set(out["kl_stderr"]) == {"mc", "k2", "k3", "k3_token", "cv_opt", "rb", "rb_cv"}
    assert out["kl"]["rb"] >= 0 and out["kl_frac_negative"]["rb"] == 0.0
    assert -1.0 <= out["reward"] <= 1.0  # VADER compound score


@pytest.mark.parametrize(
    ("override", "key"),
    [("beta=-1", "beta"), ("train.k=1", "train.k"), ("estimator=k3", "estimator"),
     ("train.gradient=dice", "train.gradient"), ("train.baseline_pairing=x", "train.baseline_pairing")],
)
def test_bad_input_refused_before_any_work(results_root, capsys, override, key):
    assert train_stage.main(args(results_root, override)) == 2
    assert f"invalid configuration: {key}" in capsys.readouterr().err


def test_corrupt_asset_is_refused_and_nothing_is_written(results_root, tmp_path, capsys):
    """A policy file that no longer matches the manifest's checksum is never loaded (issue: assets)."""
    import shutil

    root = tmp_path / "results"
    shutil.copytree(results_root / "tiny" / "assets", root / "tiny" / "assets")
    paths = ProfilePaths("tiny", root)
    config = paths.policy / "config.json"
    config.write_text(config.read_text() + " ")  # one byte more: size and sha256 differ
    capsys.readouterr()
    assert train_stage.main(args(root, "train.steps=1")) == 1
    err = capsys.readouterr().err
    assert "corrupt or partial" in err and "policy" in err
    assert not paths.run_dir("rb", 0.1, 0).exists()


def test_rerun_after_outputs_were_deleted_rebuilds_them_from_the_checkpoint(results_root):
    """Snakemake deletes a job's declared outputs (metrics.csv, model/) before re-running it; the
    checkpoint carries the metric rows, so the rerun restores both without training again."""
    import shutil

    paths = ProfilePaths("tiny", results_root)
    run = paths.run_dir("rb", 0.1, 1)
    assert train_stage.main(args(results_root, "seed=1", "train.steps=2")) == 0
    before = read_metrics(run / "metrics.csv")
    (run / "metrics.csv").unlink()
    shutil.rmtree(run / "model")
    assert train_stage.main(args(results_root, "seed=1", "train.steps=2")) == 0
    assert read_metrics(run / "metrics.csv") == before
    assert (run / "model" / "config.json").is_file()


def test_evaluate_refuses_more_prompts_than_the_test_split_has(results_root, capsys):
    assert train_stage.main(args(results_root, "train.steps=1", "seed=2")) == 0
    capsys.readouterr()
    assert evaluate_stage.main(args(results_root, "seed=2", "evaluate.num_prompts=100000")) == 1
    assert "asked for 100000 prompts" in capsys.readouterr().err
