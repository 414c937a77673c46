"""Shared glue of the study stages (variance, gradient_variance, aggregate, figures): paths, device,
model loading with clear errors, atomic table writes, and W&B logging of a study's summary."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lmkl.atomic import atomic_write_bytes, atomic_write_text
from lmkl.stages.config import to_dict
from lmkl.stages.paths import ProfilePaths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def profile_paths(cfg) -> ProfilePaths:
    return ProfilePaths(cfg.profile.name, Path(cfg.profile.results_root), Path(cfg.profile.figures_root))


def resolve_device(device: str, key: str) -> str:
    """auto → cuda when a GPU is visible, else cpu; `cuda` without a GPU is a StageError naming `key`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise StageError(f"{key}: cuda was asked for but no GPU is visible")
    return device


def device() -> str:
    """cuda when a GPU is visible, else cpu (the studies run on either)."""
    return resolve_device("auto", "device")


def require(path: Path, what: str) -> Path:
    """`path`, or a StageError naming it and the stage that makes it."""
    if not Path(path).exists():
        raise StageError(f"{what} not found at {path} (run the stage that produces it, or `snakemake` for all)")
    return Path(path)


def require_assets(paths: ProfilePaths, *names: str) -> None:
    """Check the named assets against the manifest's checksums before anything loads them: a
    corrupt, partial or unrecorded asset is refused (StageError naming it), never used."""
    from lmkl.assets.errors import AssetError
    from lmkl.assets.manifest import require_artifact

    for name in names:
        try:
            require_artifact(paths.manifest, name)
        except AssetError as e:
            raise StageError(str(e)) from e


def load_pair(policy_dir: Path, reference_dir: Path):
    """A lmkl.models.ModelPair (p = policy, q = reference) on the study device."""
    from lmkl.models import ModelPair

    require(policy_dir, "policy model")
    require(reference_dir, "reference model")
    try:
        pair = ModelPair.load(policy_dir, reference_dir, device=device())
    except ValueError as e:
        raise StageError(str(e)) from e
    pair.p.eval()
    pair.q.eval()
    return pair


def read_test_prompts(paths: ProfilePaths, n: int | None) -> list[str]:
    """The first n held-out prompts, or all with n = None (fixed order: the same prompts for every
    policy), after checking the reference model and the prompts against the manifest."""
    from lmkl.assets.prompts import read_prompts

    require_assets(paths, "policy", "prompts")  # the reference model and the prompts
    prompts = read_prompts(require(paths.prompts_test, "held-out prompts"))
    if not prompts or (n is not None and len(prompts) < n):
        raise StageError(f"asked for {n or 'some'} prompts but {paths.prompts_test} has {len(prompts)}")
    return prompts if n is None else prompts[:n]


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
    """One W&B run with the config and the study's summary (offline without credentials)."""
    if not cfg.wandb.enabled or os.environ.get("WANDB_MODE") == "disabled":
        return
    from lmkl.tracking import start_run

    run = start_run(
        project=cfg.wandb.project, name=name, group=cfg.profile.name, job_type=job_type,
        config=to_dict(cfg), dir=paths.root / "wandb",
    )
    try:
        for k, v in summary.items():
            run.summary[k] = v
        if table is not None:
            import wandb

            run.log({f"{job_type}/summary": wandb.Table(dataframe=table)})
    finally:
        run.finish()
