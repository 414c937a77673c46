"""Hub assets (the paper profile's GPT-2 policy, DistilBERT reward and IMDB text) through the hub cache.

Every repository resolves through `huggingface_hub.snapshot_download`, so the same code works online
(files are downloaded into the cache) and offline (HF_HUB_OFFLINE=1: only the cache is read). A cache
filled by `hf download` on a machine with network (a cluster's login node) therefore serves compute
nodes without it:

    hf download lvwerra/gpt2-imdb
    hf download lvwerra/distilbert-imdb
    hf download stanfordnlp/imdb --repo-type dataset --include 'plain_text/*'

The dataset is read from the snapshot's parquet files with the `datasets` parquet loader
(`datasets.load_dataset("stanfordnlp/imdb")` offline reads only its own prepared-dataset cache,
never the hub cache). `require_available` checks every repository a profile names at once and
raises one AssetError listing each missing one with the command that fetches it. A hub id may also be
a local folder (a model saved with `save_pretrained`, a dataset folder with train/test data files).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch

from lmkl.assets.errors import AssetError

# Weights and tokenizer files only: not the TF/Flax/Rust/ONNX copies some repositories also hold.
_ALLOW = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "merges.txt", "vocab.*"]
_IGNORE = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*onnx*", "training_args.bin", "optimizer.*", "*.pt"]
# The dataset repository's parquet folder (stanfordnlp/imdb: plain_text/{train,test,unsupervised}-*.parquet).
PARQUET_CONFIG = "plain_text"
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HubRepo:
    """One hub repository a profile needs; `key` is the config key naming it (for messages)."""

    key: str
    repo_id: str
    repo_type: str = "model"  # model | dataset
    revision: str | None = None

    @property
    def include(self) -> tuple[str, ...]:
        return (f"{PARQUET_CONFIG}/*",) if self.repo_type == "dataset" else ()

    def command(self) -> str:
        """The `hf download` command that puts this repository in the hub cache (HF_HOME as now set)."""
        args = ["hf", "download", self.repo_id]
        if self.repo_type != "model":
            args += ["--repo-type", self.repo_type]
        if self.revision:
            args += ["--revision", self.revision]
        for pattern in self.include:
            args += ["--include", pattern]
        env = [f"{k}={shlex.quote(os.environ[k])}" for k in ("HF_HOME", "HF_HUB_CACHE") if os.environ.get(k)]
        return " ".join([*env, *(shlex.quote(a) for a in args)])


def offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """The hub cache as the environment says now: $HF_HUB_CACHE, else $HF_HOME/hub, else the default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _missing_files(repo: HubRepo, snap: Path) -> str | None:
    """What a snapshot lacks for our use (None when complete): the cache may hold a partial download."""
    if repo.repo_type == "dataset":
        absent = [s for s in ("train", "test") if not any(f.is_file() for f in snap.glob(f"{PARQUET_CONFIG}/{s}-*.parquet"))]
        return f"the snapshot has no {PARQUET_CONFIG}/{{{','.join(absent)}}}-*.parquet" if absent else None
    if not (snap / "config.json").is_file():
        return "the snapshot has no config.json"
    if not any(f.is_file() for pattern in ("*.safetensors", "pytorch_model*.bin") for f in snap.glob(pattern)):
        return "the snapshot has no weights (*.safetensors or pytorch_model*.bin)"
    return None


def _why(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if offline():
        return f"not in the hub cache ({type(e).__name__})"
    return f"not in the hub cache, and the hub did not provide it ({type(e).__name__}: {first})"


def _fetch(repo: HubRepo) -> tuple[Path | None, str | None]:
    """(snapshot folder, None) or (None, why it is unavailable)."""
    from huggingface_hub import snapshot_download

    allow = list(repo.include) if repo.repo_type == "dataset" else _ALLOW
    ignore = None if repo.repo_type == "dataset" else _IGNORE
    try:
        snap = Path(snapshot_download(
            repo.repo_id, repo_type=repo.repo_type, revision=repo.revision, cache_dir=cache_dir(),
            local_files_only=offline(), allow_patterns=allow, ignore_patterns=ignore,
        ))
    except Exception as e:  # offline miss, DNS/connection failure, missing repo, bad id, HTTP error
        return None, _why(e)
    missing = _missing_files(repo, snap)
    return (None, f"in the hub cache but incomplete: {missing}") if missing else (snap, None)


def _error(problems: list[tuple[HubRepo, str]]) -> AssetError:
    n = len(problems)
    mode = "HF_HUB_OFFLINE is set: only the cache is read" if offline() else "online"
    lines = [f"{n} hub repositor{'y is' if n == 1 else 'ies are'} not available (hub cache {cache_dir()}; {mode}):"]
    lines += [f"  {repo.key}={repo.repo_id}: {why}" for repo, why in problems]
    lines.append("Fetch them where there is network (e.g. a cluster's login node, same HF_HOME), then rerun "
                 "(with HF_HUB_OFFLINE=1 where there is none):")
    lines += [f"  {repo.command()}" for repo, _ in problems]
    lines.append("(`hf` comes with huggingface_hub; before 1.0 the same command was `huggingface-cli download`.) "
                 "Or set the key to a local folder holding a copy.")
    return AssetError("\n".join(lines))


def require_available(repos: list[HubRepo]) -> dict[HubRepo, Path]:
    """The snapshot folder of every repository, or one AssetError listing each one that is missing
    (not in the cache offline, not fetchable online, or a partial snapshot) with its `hf download`
    command. Local folders given as hub ids are returned as they are."""
    found, problems = {}, []
    for repo in repos:
        if Path(repo.repo_id).is_dir():
            found[repo] = Path(repo.repo_id)
            continue
        snap, why = _fetch(repo)
        if snap is None:
            problems.append((repo, why))
        else:
            found[repo] = snap
    if problems:
        raise _error(problems)
    return found


def fetch(repo: HubRepo) -> Path:
    """One repository's snapshot folder (AssetError with its download command when unavailable)."""
    return require_available([repo])[repo]


def model_asset(name: str | Path, *, key: str, revision: str | None = None) -> Path:
    """A local model folder for `name`: the folder itself, or the hub cache's snapshot of a hub id
    (AssetError naming `key` when it is neither)."""
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(str(name))
    except HFValidationError:
        raise AssetError(f"{key}={name}: no such model folder (and not a hub id such as org/name)") from None
    try:
        return fetch(HubRepo(key, str(name), "model", revision))
    except AssetError as e:
        raise AssetError(f"{key}={name}: no such model folder; as a hub id: {e}") from None


def profile_repos(model, reward, data) -> list[HubRepo]:
    """The hub repositories named by a profile's model, reward and data sections (none for offline ones)."""
    repos = []
    if model.source == "hub":
        repos.append(HubRepo("model.hub_id", model.hub_id, "model", model.revision))
    if reward.kind == "classifier":
        repos.append(HubRepo("reward.hub_id", reward.hub_id, "model", reward.revision))
    if data.source == "hf_imdb":
        repos.append(HubRepo("data.hf_dataset", data.hf_dataset, "dataset"))
    return repos


def save_causal_lm(src: Path, out_dir: Path, *, dtype: torch.dtype = torch.float32) -> dict:
    """Load a causal LM and its tokenizer from `src`, give the tokenizer a pad token, save as safetensors.

    GPT-2 has no pad token. The authors add a new "[PAD]" token (growing the vocabulary to 50258);
    we use EOS as the pad token instead (as TRL's sentiment example does): padded positions are
    masked by attention masks, so the choice only matters for not changing the model's vocabulary,
    which keeps the hub weights as they are (lmkl.models pads prompts on the left itself).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__,
            "vocab_size": len(tok), "eos_token": tok.eos_token, "pad_token": tok.pad_token}


def save_classifier(src: Path, out_dir: Path) -> dict:
    """Load a sequence classifier and its tokenizer from `src` and save them as safetensors in `out_dir`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(src, local_files_only=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__,
            "id2label": {int(k): v for k, v in model.config.id2label.items()}}


def load_texts(dataset: str, split: str, *, key: str, column: str = "text") -> list[str]:
    """The `column` of one split of a dataset: a hub id (its snapshot's parquet files, read with the
    `datasets` parquet loader) or a local folder of data files (`datasets.load_dataset(folder)`)."""
    import datasets

    if Path(dataset).is_dir():
        source, load = dataset, lambda: datasets.load_dataset(dataset, split=split)
    else:
        snap = fetch(HubRepo(key, dataset, "dataset"))
        files = sorted(str(f) for f in snap.glob(f"{PARQUET_CONFIG}/{split}-*.parquet"))
        if not files:
            raise AssetError(f"{key}={dataset}: the snapshot {snap} has no {PARQUET_CONFIG}/{split}-*.parquet "
                             f"(splits there: {sorted({f.name.split('-')[0] for f in snap.glob(f'{PARQUET_CONFIG}/*.parquet')})})")
        # its Arrow copy goes where the environment says now (datasets reads HF_HOME once, at import)
        home = os.environ.get("HF_DATASETS_CACHE") or (os.environ.get("HF_HOME") and os.path.join(os.environ["HF_HOME"], "datasets"))
        source, load = snap, lambda: datasets.load_dataset("parquet", data_files={split: files}, split=split, cache_dir=home or None)
    try:
        ds = load()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AssetError(f"{key}={dataset}: could not load split '{split}' from {source}: {type(e).__name__}: {first}") from e
    if column not in ds.column_names:
        raise AssetError(f"{key}={dataset}: split '{split}' has no column '{column}' (columns: {ds.column_names})")
    return list(ds[column])
