"""The paper profile's assets from the Hugging Face hub: GPT-2 policy, DistilBERT reward, IMDB text.

Each fetch either succeeds or raises AssetError naming what could not be fetched and how to provide
it, within seconds when there is no network (HF_HUB_OFFLINE=1, or a failing connection). A hub id
may also be a local folder (a model saved with `save_pretrained`, or a dataset folder with
train/test data files), which is how machines without the hub provide the assets.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lmkl.assets.errors import AssetError

# Weights and tokenizer files only: not the TF/Flax/Rust/ONNX copies some repositories also hold.
_ALLOW = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model", "merges.txt", "vocab.*"]
_IGNORE = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*onnx*", "training_args.bin", "optimizer.*", "*.pt"]


def _how_to_provide(what: str) -> str:
    return (
        f"to provide {what}: run once with network access (it is then cached under $HF_HOME and found offline), "
        f"or set the config key to a local folder holding a copy"
    )


def fetch_snapshot(repo_id: str, revision: str | None = None, *, key: str) -> Path:
    """A local folder with the repository's files (`repo_id` itself if it is a folder).

    `key` is the config key that names the repository, for the error message.
    """
    if Path(repo_id).is_dir():
        return Path(repo_id)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=_ALLOW, ignore_patterns=_IGNORE))
    except Exception as e:  # offline mode, DNS/connection failure, missing repo, HTTP error: all the same to the user
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else ""
        raise AssetError(
            f"{key}={repo_id}: could not fetch from the Hugging Face hub{offline}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}; {_how_to_provide(repo_id)}"
        ) from e


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
    """The `column` of one split of a `datasets` dataset (hub id or local folder), as a list."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset, split=split)
    except Exception as e:
        raise AssetError(
            f"{key}={dataset}: could not load split '{split}': {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}; {_how_to_provide(dataset)}"
        ) from e
    if column not in ds.column_names:
        raise AssetError(f"{key}={dataset}: split '{split}' has no column '{column}' (columns: {ds.column_names})")
    return list(ds[column])
