"""Hydra configuration for the stages: compose `conf/<stage>.yaml` + overrides, validate, or refuse.

Every stage's primary config starts from its schema (`schema/<stage>`: the dataclasses of
`lmkl.stages.schema`, each option declared once) and then `base` (conf/base.yaml: `profile: <name>`);
the profile (a `_global_` package) sets the model, reward and data groups and every per-profile value,
sweep lists included, so Snakemake and the stages read one source of truth. Validation happens before
any work: composition is typed (unknown keys and wrong types fail), then the config is instantiated,
which runs each section's `__post_init__` value checks.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key."""


def config_error(key: str, expected: str, got: Any) -> ConfigError:
    return ConfigError(f"{key}: expected {expected}, got {got!r}")


def conf_dir() -> Path:
    """The `conf/` folder: $LMKL_CONF_DIR, else ./conf, else the one next to the source checkout."""
    candidates = [os.environ.get("LMKL_CONF_DIR"), Path.cwd() / "conf", Path(__file__).resolve().parents[3] / "conf"]
    for c in candidates:
        if c and (Path(c) / "profile").is_dir():
            return Path(c).resolve()
    raise ConfigError("conf: no Hydra config folder found (set LMKL_CONF_DIR or run from the repository root)")


def compose(stage: str, overrides: list[str]) -> DictConfig:
    """Compose `conf/<stage>.yaml` with Hydra overrides (e.g. ["profile=tiny", "beta=0.1"]). The
    primary config starts from the stage's schema (`lmkl.stages.pipeline_config` registers it), so an
    unknown key or a wrong type fails here, naming the key."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name=f"lmkl_{stage}"):
            return hydra_compose(config_name=stage, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        cause = e.__cause__
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            raise ConfigError(f"{cause.full_key}: {_first_line(cause)}") from e  # a value of the wrong type
        raise ConfigError(f"invalid overrides for `lmkl {stage}`: {_first_line(e)}") from e


def validate(cfg: DictConfig, schema: type[T]) -> T:
    """Merge `cfg` into the dataclass `schema` (types, unknown keys) and instantiate it (value checks)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{key or 'config'}: {_first_line(e)}") from e
    assert dataclasses.is_dataclass(obj)
    return obj  # type: ignore[return-value]


def load(stage: str, overrides: list[str], schema: type[T]) -> T:
    """Compose and validate: the one call a stage makes before any work."""
    return validate(compose(stage, overrides), schema)


def to_dict(obj: Any) -> dict[str, Any]:
    """A validated config as a plain dict (for manifests, fingerprints and W&B)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else OmegaConf.to_container(obj, resolve=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
