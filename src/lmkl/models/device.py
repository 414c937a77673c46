"""The device a model runs on, from the user's spelling: auto | cpu | cuda | cuda:<i>."""

from __future__ import annotations

import re

import torch

DEVICE_HELP = "auto (CUDA when a GPU is visible, else the CPU), cpu, cuda or cuda:<i>"


def check_device_spec(spec: str, key: str) -> re.Match | None:
    """ValueError naming `key` unless `spec` is spelled auto | cpu | cuda | cuda:<i> (whether that
    device exists is `resolve_device`'s question); the match of cpu/cuda[:i], None for auto."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return None
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", spec)
    if match is None:
        raise ValueError(f"{key}: expected {DEVICE_HELP}, got {spec!r}")
    return match


def resolve_device(spec: str, key: str) -> torch.device:
    """The torch.device `spec` names; ValueError naming `key` for a bad spelling, or for CUDA asked for
    where no GPU (or no GPU of that index) is visible."""
    match = check_device_spec(spec, key)
    spec = str(spec).strip().lower()
    if match is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{key}: {spec} was asked for but no GPU is visible (use auto or cpu)")
        if match.group(1) is not None and int(match.group(1)) >= count:
            raise ValueError(f"{key}: {spec} was asked for but only {count} GPU(s) are visible (cuda:0..cuda:{count - 1})")
    return torch.device(spec)
