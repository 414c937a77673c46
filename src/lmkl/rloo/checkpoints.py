"""Checkpoints of a training run: `checkpoints/step_NNNNNN.pt`, each written atomically.

A checkpoint is the trainer's `state_dict()` (policy weights, AdamW state, both generators, the
global torch RNG, the prompt shuffle and cursor, the step). Loading the latest one and running on
gives the same result as never having stopped (tested on CPU). The RNG states and the prompt order
are stored as bytes and a list, so `map_location` (the training device) moves only the weights and
optimizer state; the RNG states are restored from CPU tensors whatever the device.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch

from lmkl.atomic import atomic_write_bytes

_NAME = re.compile(r"^step_(\d{6,})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict, *, keep: int = 2) -> Path:
    """Write `state` as checkpoints/step_<state['step']>.pt (atomically); keep the newest `keep`."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = atomic_write_bytes(checkpoint_dir(run_dir) / f"step_{int(state['step']):06d}.pt", buf.getvalue())
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary files of an interrupted write are not listed)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_latest(run_dir: str | Path, map_location: str | torch.device = "cpu") -> dict | None:
    """The newest checkpoint's state, or None when there is none."""
    paths = list_checkpoints(run_dir)
    if not paths:
        return None
    return torch.load(paths[-1], map_location=map_location, weights_only=False)
