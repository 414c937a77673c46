"""The shell every stage runs in: parse overrides, validate the config, run, report errors cleanly.

A stage module does:

    def main(overrides: list[str]) -> int:
        return runner.run("train", overrides, TrainStageConfig, train_body)

Exit codes: 0 done, 2 invalid configuration (refused before any work), 1 failed while running
(the message says what, and where the partial outputs are not: outputs are atomic).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import MISSING, OmegaConf

from lmkl.options import option_rows
from lmkl.stages.config import ConfigError, compose, validate

T = TypeVar("T")
log = logging.getLogger("lmkl")


class StageError(RuntimeError):
    """A failure while a stage runs that the user can act on; printed without a traceback."""


def run(stage: str, overrides: list[str], schema: type[T], body: Callable[[T], object]) -> int:
    if any(a in ("-h", "--help") for a in overrides):
        try:
            print(usage(stage, [a for a in overrides if a not in ("-h", "--help")], schema))
        except ConfigError as e:
            print(f"lmkl {stage}: invalid configuration: {e}", file=sys.stderr)
            return 2
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        cfg = validate(compose(stage, overrides), schema)
    except ConfigError as e:
        print(f"lmkl {stage}: invalid configuration: {e}", file=sys.stderr)
        return 2
    try:
        body(cfg)
    except (StageError, ConfigError) as e:
        print(f"lmkl {stage}: error: {e}", file=sys.stderr)
        return 1
    return 0


def usage(stage: str, overrides: list[str], schema: type) -> str:
    """Every option of the stage: its value as composed (the profile's, with `overrides`), its help,
    and the schema default where the profile or an override sets another value."""
    cfg = compose(stage, overrides)
    lines = [
        f"usage: lmkl {stage} [key=value ...]  (Hydra overrides, e.g. profile=tiny train.steps=5)",
        "",
        f"options (values as composed: conf/{stage}.yaml, the profile {cfg.profile.name!r}"
        f"{' and the overrides given' if overrides else ''}; `???`: required):",
    ]
    for key, default, help_ in option_rows(schema):
        value = OmegaConf.select(cfg, key, default=MISSING)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        note = "" if value == default else f" [default: {_text(default)}]"
        lines.append(f"  {key}={_text(value)}{note}")
        lines.append(f"      {help_}")
    return "\n".join(lines)


def _text(value: object) -> str:
    """An option value as override text: null, lists in brackets, MISSING as ???."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)
