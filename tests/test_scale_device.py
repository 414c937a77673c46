"""The `scale` group (full: the profile as it is; smoke: the whole DAG in minutes) and the one `device`
key every stage reads, through the stages' configs and the Snakefile's --config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmkl.stages.config import ConfigError, load
from lmkl.stages.inputs import stage_device
from lmkl.stages.pipeline_config import SCHEMAS
from lmkl.stages.plan import PIPELINE_STAGES, plan, snakemake_overrides
from lmkl.stages.runner import StageError

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (REPO / "conf" / "profile").glob("*.yaml"))
# what smoke shrinks, and the section each size lives in
SIZES = {
    "train": ["steps", "num_prompts", "num_ppo_epochs", "max_new_tokens"],
    "variance": ["prompts", "repetitions", "ground_truth_samples", "max_new_tokens"],
    "gradient_variance": ["prompts", "repetitions", "max_new_tokens"],
}


@pytest.mark.parametrize("profile", PROFILES)
def test_smoke_shrinks_every_profile_and_keeps_both_estimators(profile):
    full = plan([f"profile={profile}"])
    smoke = plan([f"profile={profile}", "scale=smoke"])
    assert full["config"] == plan([f"profile={profile}", "scale=full"])["config"]  # full: the profile as it is
    assert sorted(smoke["estimators"]) == ["mc", "rb"] and len(smoke["betas"]) <= 2 and smoke["seeds"] == [0]
    assert len(smoke["runs"]) < len(full["runs"])
    f, s = full["config"], smoke["config"]
    for section, keys in SIZES.items():
        for key in keys:
            assert s[section][key] <= f[section][key], (section, key)
    assert max(s["variance"]["sample_sizes"]) < max(f["variance"]["sample_sizes"])
    assert s["train"]["steps"] <= 3 and s["variance"]["repetitions"] >= 2  # the studies' minimum
    # its own folders: a smoke run never lands in (or extends) a full run's folder
    assert smoke["results"] == f"results/smoke/{profile}" and smoke["figures"] == f"figures/smoke/{profile}"
    assert full["results"] == f"results/{profile}"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stage", PIPELINE_STAGES)
def test_every_stage_composes_and_validates_at_smoke_scale(profile, stage):
    extra = {"train": ["estimator=rb"], "evaluate": ["estimator=rb"], "variance": ["target=exact"],
             "gradient_variance": ["target=reference"]}.get(stage, [])
    cfg = load(stage, [f"profile={profile}", "scale=smoke", *extra], SCHEMAS[stage])
    assert cfg.profile.results_root == "results/smoke" and cfg.device == "auto"


def test_an_unknown_scale_is_refused_naming_it():
    with pytest.raises(ConfigError, match="scale/huge"):
        plan(["profile=tiny", "scale=huge"])


@pytest.mark.parametrize("spec", ["auto", "cpu", "cuda", "cuda:1", "CUDA:0"])
def test_device_spellings_are_accepted_by_every_stage(spec):
    for stage in ("download", "train", "variance"):
        extra = ["target=exact"] if stage == "variance" else []
        assert load(stage, [f"device={spec}", *extra], SCHEMAS[stage]).device == spec


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cpu:0", "mps0"])
def test_a_misspelled_device_is_a_config_error_naming_the_key(spec):
    with pytest.raises(ConfigError, match=r"^device: expected auto .*cuda:<i>"):
        load("evaluate", [f"device={spec}"], SCHEMAS["evaluate"])


def test_auto_picks_cuda_when_present_and_a_missing_gpu_is_a_stage_error():
    cfg = load("train", ["device=auto"], SCHEMAS["train"])
    assert stage_device(cfg) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert stage_device(load("train", ["device=cpu"], SCHEMAS["train"])) == "cpu"
    missing = "cuda:64" if torch.cuda.is_available() else "cuda"  # no machine here has 65 GPUs
    with pytest.raises(StageError, match=r"^device: .*(no GPU|GPU\(s\) are visible)"):
        stage_device(load("train", [f"device={missing}"], SCHEMAS["train"]))


def test_snakemake_scale_and_device_reach_every_stage_and_the_plan():
    o = snakemake_overrides({"profile": "paper", "scale": "smoke", "device": "cuda:1"})
    for key in ("plan", *PIPELINE_STAGES):
        assert o[key][:3] == ["profile=paper", "scale=smoke", "device=cuda:1"], key
    with pytest.raises(ConfigError, match="--config scale"):
        snakemake_overrides({"scale": ["smoke"]})


def test_snakefile_dry_run_at_smoke_scale_uses_its_own_folders(tmp_path):
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-n", "--cores", "1", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--config", "profile=paper", "scale=smoke", "device=cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "results/smoke/paper/train/rb_beta0.1_seed0/metrics.csv" in proc.stdout
    assert "figures/smoke/paper/pareto.png" in proc.stdout
    assert "lmkl train profile=paper scale=smoke device=cpu" in proc.stdout
    assert "results/paper/" not in proc.stdout
