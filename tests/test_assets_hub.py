"""Hub assets through the hub cache (lmkl.assets.hub), offline, from the stand-in hub (tests/hub_standin.py):
the paper profile's download from a cache that `hf download` would leave, one error listing every
missing repository with its download command, partial snapshots, and folders given as hub ids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub_standin import DISTILBERT_REPO, GPT2_REPO, IMDB_REPO, SHORT_REVIEWS, repo_folder
from lmkl.assets import hub
from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import read_manifest
from lmkl.assets.prompts import read_prompts
from lmkl.stages import download

COMMANDS = {
    GPT2_REPO: "hf download lvwerra/gpt2-imdb",
    DISTILBERT_REPO: "hf download lvwerra/distilbert-imdb",
    IMDB_REPO: "hf download stanfordnlp/imdb --repo-type dataset --include 'plain_text/*'",
}


def _lmkl_download(results: Path, hf_home: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run(
        [sys.executable, "-m", "lmkl.cli", "download", "profile=paper", f"profile.results_root={results}", *extra],
        env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture
def offline_hub(standin_hub, monkeypatch):
    """The stand-in as this process's hub cache, offline (lmkl.assets.hub reads the environment per call)."""
    monkeypatch.setenv("HF_HOME", str(standin_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return standin_hub


def test_paper_download_from_the_hub_cache_offline(standin_hub, tmp_path):
    from transformers import AutoTokenizer

    proc = _lmkl_download(tmp_path, standin_hub)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assets = tmp_path / "paper" / "assets"
    assert set(read_manifest(assets / "manifest.json")["artifacts"]) == {"policy", "reward", "prompts"}
    tok = AutoTokenizer.from_pretrained(assets / "policy")
    assert len(tok) == 50257 and tok.eos_token_id == 50256 and tok.pad_token == tok.eos_token  # GPT-2's BPE
    train, test = read_prompts(assets / "prompts/train.jsonl"), read_prompts(assets / "prompts/test.jsonl")
    assert len(train) > 50 and len(test) > 20 and not set(train) & set(test)
    assert not any(p in s for p in train + test for s in SHORT_REVIEWS if len(p) > 6)  # the > 200-character filter
    assert all(2 <= len(tok.encode(p)) <= 8 + 1 for p in train)  # decode→encode may merge differently by ≤ 1

    # Built assets need no hub: with the cache gone, a rerun finds everything current.
    shutil.rmtree(standin_hub / "hub")
    proc = _lmkl_download(tmp_path, standin_hub)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("up to date") == 3


def test_missing_repositories_are_listed_with_their_download_commands(standin_hub, tmp_path):
    shutil.rmtree(repo_folder(standin_hub, DISTILBERT_REPO))
    shutil.rmtree(repo_folder(standin_hub, IMDB_REPO))
    proc = _lmkl_download(tmp_path, standin_hub)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "reward.hub_id=lvwerra/distilbert-imdb: not in the hub cache" in proc.stderr
    assert "data.hf_dataset=stanfordnlp/imdb: not in the hub cache" in proc.stderr
    assert "2 hub repositories are not available" in proc.stderr and "HF_HUB_OFFLINE is set" in proc.stderr
    for repo in (DISTILBERT_REPO, IMDB_REPO):
        assert f"HF_HOME={standin_hub} {COMMANDS[repo]}" in proc.stderr
    assert "gpt2-imdb" not in proc.stderr  # the one that is there is not listed
    assert not (tmp_path / "paper" / "assets" / "policy").exists()  # refused before any work


def test_a_partial_snapshot_is_reported_as_incomplete(offline_hub):
    snap = next((repo_folder(offline_hub, GPT2_REPO) / "snapshots").iterdir())
    (snap / "model.safetensors").unlink()
    (next((repo_folder(offline_hub, IMDB_REPO) / "snapshots").iterdir()) / "plain_text" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(AssetError) as err:
        hub.require_available([hub.HubRepo("model.hub_id", GPT2_REPO), hub.HubRepo("reward.hub_id", DISTILBERT_REPO),
                               hub.HubRepo("data.hf_dataset", IMDB_REPO, "dataset")])
    msg = str(err.value)
    assert "model.hub_id=lvwerra/gpt2-imdb: in the hub cache but incomplete: the snapshot has no weights" in msg
    assert "data.hf_dataset=stanfordnlp/imdb: in the hub cache but incomplete" in msg and "{test}" in msg
    assert "distilbert" not in msg and COMMANDS[GPT2_REPO] in msg and COMMANDS[IMDB_REPO] in msg


def test_model_asset_resolves_hub_ids_and_passes_folders_through(offline_hub, tmp_path):
    snap = hub.model_asset(GPT2_REPO, key="--p")
    assert snap.parent.parent == repo_folder(offline_hub, GPT2_REPO) and (snap / "config.json").is_file()
    assert hub.model_asset(snap, key="--p") == snap
    with pytest.raises(AssetError, match=r"--q=org/absent: not in the hub cache[\s\S]*hf download org/absent"):
        hub.model_asset("org/absent", key="--q")


def test_dataset_splits_come_from_the_snapshot_parquet_files(offline_hub):
    train = hub.load_texts(IMDB_REPO, "train", key="data.hf_dataset")
    unsupervised = hub.load_texts(IMDB_REPO, "unsupervised", key="data.hf_dataset")
    assert len(train) == 150 + len(SHORT_REVIEWS) and len(unsupervised) == 25
    assert sum(len(t) > 200 for t in train) == 150
    with pytest.raises(AssetError, match=r"no plain_text/validation-\*\.parquet \(splits there: \['test', 'train', 'unsupervised'\]\)"):
        hub.load_texts(IMDB_REPO, "validation", key="data.hf_dataset")


def test_download_in_process_checks_only_the_repositories_it_needs(offline_hub, tmp_path):
    """With the reward built, a rebuild of the policy and prompts needs only the model and the dataset."""
    args = ["profile=paper", f"profile.results_root={tmp_path}", "data.max_test_prompts=20"]
    assert download.main(args) == 0
    shutil.rmtree(repo_folder(offline_hub, DISTILBERT_REPO))
    assert download.main([*args, "model.dtype=float64"]) == 0  # policy and prompts stale, reward current
    assert len(read_prompts(tmp_path / "paper" / "assets" / "prompts/test.jsonl")) == 20
