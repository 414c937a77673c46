"""W&B logging that never blocks on the network.

`start_run` opens a real wandb run: online when an API key is configured (WANDB_API_KEY or a
~/.netrc entry) and WANDB_MODE is not set, offline otherwise (the run is stored under `dir`/wandb
and can be uploaded later with `wandb sync`). WANDB_MODE=disabled turns logging off.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """The mode a run will use: WANDB_MODE if set, else online with credentials, else offline."""
    return os.environ.get("WANDB_MODE") or ("online" if _has_credentials() else "offline")


def start_run(
    *,
    project: str,
    name: str,
    group: str,
    job_type: str,
    config: dict[str, Any],
    dir: str | os.PathLike,
    tags: list[str] | None = None,
    resume_id: str | None = None,
):
    """Start (or resume, with `resume_id`) a wandb run; returns the run object (has .log, .summary, .finish)."""
    import wandb

    Path(dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=project,
        name=name,
        group=group,
        job_type=job_type,
        config=config,
        dir=str(dir),
        tags=tags,
        mode=wandb_mode(),
        id=resume_id,
        resume="allow" if resume_id else None,
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        reinit="finish_previous",
    )
