"""What the stages write: tables (atomically, parquet or CSV by suffix) and a study's summary to W&B."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from lmkl import tracking
from lmkl.atomic import atomic_write_bytes, atomic_write_text
from lmkl.stages.config import to_dict
from lmkl.stages.paths import ProfilePaths


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write df atomically as parquet or CSV (by suffix)."""
    if path.suffix == ".parquet":
        return atomic_write_bytes(path, parquet_bytes(df))
    if path.suffix == ".csv":
        return atomic_write_text(path, df.to_csv(index=False))
    raise ValueError(f"path: expected a .parquet or .csv file, got {path}")


def log_summary(cfg, paths: ProfilePaths, *, name: str, job_type: str, summary: dict[str, Any], table: pd.DataFrame | None = None) -> None:
    """One W&B run of the profile's group with the config and a stage's summary (offline without
    credentials; nothing when wandb.enabled is false or WANDB_MODE=disabled)."""
    if tracking.enabled(cfg.wandb.enabled):
        tracking.log_summary(project=cfg.wandb.project, name=name, group=cfg.profile.name, job_type=job_type,
                             config=to_dict(cfg), dir=paths.root / "wandb", summary=summary, table=table)
