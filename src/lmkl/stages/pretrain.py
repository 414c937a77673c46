"""`lmkl pretrain profile=tiny [pretrain.steps=N ...]`: pretrain the tiny GPT-2 → results/tiny/assets/policy/.

Reads the tokenizer `lmkl download` built (checked against the manifest), trains a fresh
GPT-2-architecture model (conf/model/tiny-gpt2.yaml) on the UCI sentences for `pretrain.steps` steps
(lmkl.assets.pretrain), saves model + tokenizer atomically and records the held-out perplexity and
three samples in manifest.json. Idempotent: a policy whose fingerprint (model shape, pretraining
options, tokenizer and corpus checksums) and file checksums match the manifest is kept.
For a profile whose model is not pretrained (model.source ≠ pretrain) there is nothing to do.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from lmkl.assets import artifacts
from lmkl.assets.corpus import uci_files
from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import fingerprint, require_artifact
from lmkl.assets.pretrain import GPT2Shape, PretrainSchedule
from lmkl.stages import runner
from lmkl.stages.pipeline_config import PretrainConfig, profile_paths

SAMPLE_PROMPTS = ["This movie", "The acting was", "I"]


def _samples(policy_dir, seed: int) -> list[str]:
    """Three samples (temperature 1, ≤ 40 tokens) for the manifest and the log: does it look like a review?"""
    from lmkl.models import load_causal_lm, sample

    model, tok = load_causal_lm(policy_dir)
    roll = sample(model, tok, SAMPLE_PROMPTS, n_per_prompt=1, max_new_tokens=40,
                  generator=torch.Generator().manual_seed(seed))
    return [p + t for p, t in zip(SAMPLE_PROMPTS, roll.texts)]


def pretrain(cfg: PretrainConfig) -> None:
    m, p = cfg.model, cfg.pretrain
    if m.source != "pretrain":
        runner.log.info("profile %s: model.source=%s, the model comes from `lmkl download`; nothing to pretrain",
                        cfg.profile.name, m.source)
        return
    assets = profile_paths(cfg).assets
    manifest = assets / "manifest.json"
    try:
        require_artifact(manifest, "tokenizer")
    except AssetError as e:
        raise runner.StageError(f"{e} (run `lmkl download profile={cfg.profile.name}` first)") from e
    torch.set_num_threads(p.threads)
    shape = GPT2Shape(vocab_size=m.vocab_size, n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd,
                      n_positions=m.n_positions, dropout=p.dropout)
    sched = PretrainSchedule(**{f.name: getattr(p, f.name) for f in dataclasses.fields(PretrainSchedule)})
    options = {k: v for k, v in dataclasses.asdict(p).items() if k not in ("force", "eval_every")}
    fp = fingerprint({
        "v": artifacts.BUILD_VERSION, "shape": dataclasses.asdict(shape), "pretrain": options,
        "tokenizer": artifacts.file_checksums(sorted(f for f in (assets / "tokenizer").iterdir() if f.is_file())),
        "corpus": artifacts.file_checksums(uci_files(list(p.corpus))),
    })

    def build(out):
        source, info = artifacts.build_pretrained_lm(out, tokenizer_dir=assets / "tokenizer", shape=shape, schedule=sched,
                                                     corpus=p.corpus, heldout_fraction=p.heldout_fraction)
        return source, {**info, "samples": _samples(out, p.seed)}

    built, entry = artifacts.ensure_artifact(assets, "policy", profile=cfg.profile.name, stage="pretrain",
                                             fingerprint=fp, build=build, force=p.force)
    if built:
        info = entry["info"]
        runner.log.info("pretrained %d parameters in %.0f s: held-out perplexity %.1f", info["params"], info["seconds"],
                        info["heldout_perplexity"])
        for s in info["samples"]:
            runner.log.info("sample: %s", s)
    # Snakemake compares mtimes: the policy folder (this rule's output) must not look older than the
    # manifest (its input), which this stage has just rewritten, or every later run would redo the DAG.
    os.utime(assets / "policy")


def main(overrides: list[str]) -> int:
    return runner.run("pretrain", overrides, PretrainConfig, pretrain)
