"""The pipeline's single source of truth: `lmkl config sweep` / the Snakefile read the Hydra profile,
map --config keys to overrides, and refuse bad input (naming the key) before any job starts."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmkl.cli import main as lmkl_main
from lmkl.stages.config import ConfigError
from lmkl.stages.paths import parse_run_name, run_name
from lmkl.stages.plan import check_stage, plan, snakemake_overrides

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.mark.parametrize("profile", ["tiny", "smollm2", "paper"])
def test_plan_lists_every_run_of_the_profile(profile):
    p = plan([f"profile={profile}"])
    cfg = p["config"]["sweep"]
    expected = {run_name(e, b, s) for e, b, s in itertools.product(cfg["estimators"], cfg["betas"], cfg["seeds"])}
    assert {r["name"] for r in p["runs"]} == expected
    assert p["results"] == f"results/{profile}" and p["figures"] == f"figures/{profile}"
    assert p["gradient_points"][0] == "reference" and p["gradient_points"][1] in expected


def test_paper_profile_sweeps_enough_betas_and_seeds_for_a_frontier():
    cfg = plan(["profile=paper"])["config"]
    assert len(cfg["sweep"]["betas"]) >= 5 and len(cfg["sweep"]["seeds"]) >= 3
    assert cfg["train"]["lr"] == pytest.approx(3e-5) and cfg["train"]["max_new_tokens"] == 53  # the authors' values


def test_snakemake_config_keys_become_hydra_overrides():
    o = snakemake_overrides({"profile": "paper", "seeds": [0, 1, 2], "betas": [0.05, 0.1], "sample_sizes": [1, 4],
                             "train_overrides": ["train.steps=3"]})
    assert o["plan"] == ["profile=paper", "sweep.betas=[0.05,0.1]", "sweep.seeds=[0,1,2]", "variance.sample_sizes=[1,4]"]
    assert o["train"] == ["profile=paper", "train.steps=3"]  # sweep lists go to the plan and the study stages only
    assert "variance.sample_sizes=[1,4]" in o["variance"]
    p = plan(o["plan"])
    assert len(p["runs"]) == 2 * 2 * 3 and p["betas"] == ["0.05", "0.1"]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"profile": "nope"}, "profile/nope"),
        ({"seeds": ["a"]}, "sweep.seeds"),
        ({"sample_sizes": [0]}, "variance.sample_sizes"),
        ({"estimators": ["k3"]}, "sweep.estimators"),
        ({"prompts": 0}, "variance.prompts"),
        ({"bogus": 1}, "--config bogus"),
        ({"repetitions": 1}, "variance.repetitions"),  # a std over one estimate would be NaN
        ({"overrides": ["variance.estimators=[rb,k3]"]}, "variance.estimators"),  # figures are relative to mc
        ({"overrides": ["gradient_variance.forms=[rb_causal]"]}, "gradient_variance.forms"),
        ({"train_overrides": "train.steps"}, ""),  # not a key=value override: Hydra refuses it
    ],
)
def test_bad_input_is_refused_naming_the_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") if key else None):
        o = snakemake_overrides(config)
        plan(o["plan"])
        check_stage("train", [*o["train"], "estimator=rb", "beta=0.1", "seed=0"])


def test_run_names_round_trip():
    for e, b, s in [("rb", 0.05, 0), ("mc", 1.0, 12), ("rb", 1e-3, 3)]:
        assert parse_run_name(run_name(e, b, s)) == (e, pytest.approx(b), s)
    with pytest.raises(ValueError, match="run name"):
        parse_run_name("rb_0.1_seed0")


def test_lmkl_config_sweep_prints_the_plan_or_exits_2(capsys):
    assert lmkl_main(["config", "sweep", "profile=tiny", "sweep.seeds=[3]"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == [3] and all(r["seed"] == 3 for r in out["runs"])
    assert lmkl_main(["config", "sweep", "variance.repetitions=-1"]) == 2
    assert "variance.repetitions" in capsys.readouterr().err


def _dry_run(tmp_path, *config):
    cmd = [str(SNAKEMAKE), "-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--config", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_snakefile_dag_follows_the_overridden_sweep(tmp_path):
    proc = _dry_run(tmp_path, "profile=tiny", "seeds=[0,1,2]", "betas=[0.05]", "estimators=[mc,rb]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = dict(line.split() for line in proc.stdout.splitlines() if line.split()[:1] and
                  line.split()[0] in {"train", "evaluate", "variance", "pretrain", "figures"} and len(line.split()) == 2)
    assert counts == {"train": "6", "evaluate": "6", "variance": "6", "pretrain": "1", "figures": "1"}
    for s in range(3):  # job outputs (and so job names) carry <estimator>_beta<beta>_seed<seed>
        assert f"results/tiny/train/rb_beta0.05_seed{s}/metrics.csv" in proc.stdout


def test_snakefile_refuses_a_bad_override_before_any_job(tmp_path):
    proc = _dry_run(tmp_path, "profile=tiny", "repetitions=0")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # Snakemake prints workflow errors on stdout
    assert "variance.repetitions" in out and "nothing was run" in out
    assert not (tmp_path / "results").exists()


def test_snakefile_rules_declare_threads_resources_and_benchmarks(tmp_path):
    """The GPU rules (and only they) declare gpu=1, every job has mem_mb and a benchmark file under
    results/<profile>/benchmarks/ (what --resources gpu=N and profiles/slurm rely on)."""
    proc = _dry_run(tmp_path, "profile=tiny", "seeds=[0]", "betas=[0.1]", "estimators=[rb]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {}  # rule -> {field: value} of its last job in the dry run
    for block in proc.stdout.split("\nrule ")[1:]:
        name, _, body = block.partition(":\n")
        jobs[name] = dict(line.strip().split(": ", 1) for line in body.splitlines()
                          if line.startswith("    ") and ": " in line)
    gpu_rules = {"train", "evaluate", "variance", "gradient_variance"}
    assert gpu_rules < set(jobs) and {"download", "pretrain", "aggregate", "figures"} < set(jobs)
    for rule, fields in jobs.items():
        if rule == "all":
            continue
        resources = dict(r.split("=", 1) for r in fields["resources"].split(", "))
        assert ("gpu" in resources) == (rule in gpu_rules), (rule, resources)
        assert int(resources["mem_mb"]) >= 1000, (rule, resources)
        assert fields["benchmark"].startswith("results/tiny/benchmarks/") and fields["benchmark"].endswith(".tsv")
    assert jobs["train"]["benchmark"] == "results/tiny/benchmarks/train/rb_beta0.1_seed0.tsv"
    assert "gpu=1" in jobs["train"]["resources"].split(", ")
