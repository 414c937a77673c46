"""What the stages read, with clear errors (StageError naming the file and the stage that makes it):
the device, required files, assets checked against the manifest, model pairs, held-out prompts."""

from __future__ import annotations

import logging
from pathlib import Path

from lmkl.stages.paths import ProfilePaths
from lmkl.stages.pipeline_config import profile_paths
from lmkl.stages.runner import StageError

log = logging.getLogger("lmkl")


def stage_device(cfg) -> str:
    """The device of the config's top-level `device` key (auto → cuda when a GPU is visible, else cpu);
    a GPU asked for where none (or no such index) is visible is a StageError naming the key."""
    from lmkl.models.device import resolve_device

    try:
        return str(resolve_device(cfg.device, "device"))
    except ValueError as e:
        raise StageError(str(e)) from None


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


def load_pair(policy_dir: Path, reference_dir: Path, device: str, *, dtype: str = "float32"):
    """A lmkl.models.ModelPair (p = policy, q = reference) on `device`, in eval mode; a model that does
    not load (or two vocabularies that differ) is a StageError."""
    import torch

    from lmkl.models import ModelPair

    require(policy_dir, "policy model")
    require(reference_dir, "reference model")
    try:
        pair = ModelPair.load(policy_dir, reference_dir, dtype=getattr(torch, dtype), device=device)
    except ValueError as e:
        raise StageError(str(e)) from e
    pair.p.eval()
    pair.q.eval()
    return pair


def load_pair_and_reward(cfg, policy_dir: Path, device: str):
    """(ModelPair(policy_dir, the profile's reference model), the profile's reward function) on
    `device`, the models in cfg.model.dtype; anything that does not load is a StageError."""
    from lmkl.rewards import make_reward

    paths = profile_paths(cfg)
    pair = load_pair(policy_dir, paths.policy, device, dtype=cfg.model.dtype)
    try:
        reward = make_reward(cfg.reward.kind, paths.reward, batch_size=cfg.reward.batch_size, device=device)
    except ValueError as e:
        raise StageError(str(e)) from e
    return pair, reward


def read_test_prompts(paths: ProfilePaths, n: int | None) -> list[str]:
    """The first n held-out prompts, or all with n = None (fixed order: the same prompts for every
    policy), after checking the reference model and the prompts against the manifest."""
    from lmkl.assets.prompts import read_prompts

    require_assets(paths, "policy", "prompts")  # the reference model and the prompts
    prompts = read_prompts(require(paths.prompts_test, "held-out prompts"))
    if not prompts or (n is not None and len(prompts) < n):
        raise StageError(f"asked for {n or 'some'} prompts but {paths.prompts_test} has {len(prompts)}")
    return prompts if n is None else prompts[:n]


def training_inputs(cfg) -> tuple[Path, list[str]]:
    """(the reference model's folder, where every policy starts; the training prompts, the first
    `train.max_train_prompts` of them) — what both training engines read."""
    from lmkl.assets.prompts import read_prompts

    paths = profile_paths(cfg)
    policy_dir = require(paths.policy, "reference model (run `lmkl download` / `lmkl pretrain`)")
    prompts = read_prompts(require(paths.prompts_train, "training prompts (run `lmkl download`)"))
    if cfg.train.max_train_prompts is not None:
        prompts = prompts[: cfg.train.max_train_prompts]
    return policy_dir, prompts
