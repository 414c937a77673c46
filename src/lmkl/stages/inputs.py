"""What the stages read, with clear errors (StageError naming the file and the stage that makes it):
the device, required files, assets checked against the manifest, model pairs, held-out prompts."""

from __future__ import annotations

import logging
from pathlib import Path

from lmkl.stages.paths import ProfilePaths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


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
