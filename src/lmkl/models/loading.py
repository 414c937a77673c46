"""Load a causal LM and its tokenizer from a local directory, never from a model hub."""

from __future__ import annotations

from pathlib import Path

import torch

from lmkl.models.errors import ModelLoadError


def quiet_progress_bars() -> None:
    """No per-file progress bars from transformers while loading (a command shows its own)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_causal_lm(path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """Load `(model, tokenizer)` from a local directory saved with `save_pretrained`.

    Offline-safe: only `path` is read (`local_files_only=True`), so nothing waits on a network whether
    or not HF_HUB_OFFLINE is set; a hub id such as "gpt2" is refused, not downloaded. The model is put
    in eval mode (no dropout): sampling and scoring must see the same deterministic distribution.

    Raises ModelLoadError (a ValueError) naming the path when the directory, its config or its
    tokenizer files are missing or unreadable.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = Path(path)
    if not root.is_dir():
        raise ModelLoadError(f"model directory not found: {root} (expected a local directory saved with save_pretrained)")
    if not (root / "config.json").is_file():
        raise ModelLoadError(f"{root}: no config.json; not a saved transformers model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{root}: cannot load its tokenizer ({e})") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(root, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{root}: cannot load the model ({e})") from e
    model.to(device).eval()
    return model, tokenizer
