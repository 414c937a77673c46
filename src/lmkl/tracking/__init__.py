"""W&B logging that never blocks on the network.

`start_run` opens a real wandb run: online when an API key is configured (WANDB_API_KEY or a
~/.netrc entry) and WANDB_MODE is not set, offline otherwise (the run is stored under `dir`/wandb
and can be uploaded later with `wandb sync`). WANDB_MODE=disabled turns logging off.

`update_summary` adds keys to the summary of an existing run (resumed by id: the evaluation lands in
the training run's own summary); `log_report` writes a profile's report run (figures as images,
the claims as a table). `lmkl.tracking.offline.read_run` reads an offline run back. Every use of
wandb in lmkl goes through this package.
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


def enabled(flag: bool = True) -> bool:
    """Whether to log at all: `flag` (a config's wandb.enabled) and WANDB_MODE is not `disabled`."""
    return bool(flag) and os.environ.get("WANDB_MODE") != "disabled"


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


def log_summary(*, summary: dict[str, Any], table=None, **init) -> None:
    """One run holding `init["config"]` and `summary`; `table` (a pandas DataFrame) is logged as a
    wandb.Table under `<job_type>/summary`. `init` takes start_run's keyword arguments."""
    import wandb

    run = start_run(**init)
    try:
        run.summary.update(summary)
        if table is not None:
            run.log({f"{init['job_type']}/summary": wandb.Table(dataframe=table)})
    finally:
        run.finish()


def update_summary(*, run_id: str, summary: dict[str, Any], **init) -> None:
    """Resume run `run_id` and set `summary` keys in it (config updates from `init["config"]` merge).

    `init` takes start_run's other keyword arguments (project, name, group, job_type, config, dir, tags):
    an offline resume starts a new record file with the same id, which `wandb sync` merges into the run.
    """
    run = start_run(resume_id=run_id, **init)
    try:
        run.summary.update(summary)
    finally:
        run.finish()


def log_report(
    *,
    project: str,
    profile: str,
    dir: str | os.PathLike,
    images: dict[str, tuple[Path, str]],
    table_name: str,
    table,
    summary: dict[str, Any],
    config: dict[str, Any],
) -> str:
    """The report run of a profile (one per profile: id `report-<profile>`, resumed on a rerun).

    images: {key: (PNG path, caption)} logged as wandb.Image; table: a pandas DataFrame logged as a
    wandb.Table under `table_name`; summary: set in the run's summary. Returns the run id.
    """
    import wandb

    run_id = f"report-{profile}"
    run = start_run(project=project, name=f"{profile}/report", group=profile, job_type="report", config=config,
                    dir=dir, tags=[profile, "report"], resume_id=run_id)
    try:
        run.log({key: wandb.Image(str(path), caption=caption) for key, (path, caption) in images.items()}
                | {table_name: wandb.Table(dataframe=table)})
        run.summary.update(summary)
    finally:
        run.finish()
    return run_id
