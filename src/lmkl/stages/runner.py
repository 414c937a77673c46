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

from omegaconf import OmegaConf

from lmkl.stages.config import ConfigError, compose, validate

T = TypeVar("T")
log = logging.getLogger("lmkl")


class StageError(RuntimeError):
    """A failure while a stage runs that the user can act on; printed without a traceback."""


def run(stage: str, overrides: list[str], schema: type[T], body: Callable[[T], object]) -> int:
    if any(a in ("-h", "--help") for a in overrides):
        print(f"usage: lmkl {stage} [key=value ...]  (Hydra overrides; e.g. profile=tiny)\n")
        print(f"composed configuration (conf/{stage}.yaml with the default profile):\n")
        print(OmegaConf.to_yaml(compose(stage, [a for a in overrides if a not in ("-h", "--help")])))
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
