"""Read an offline W&B run back from its `.wandb` record files, without a server.

wandb ≥ 0.2x writes offline runs only as `run-<id>.wandb` (a LevelDB-style log of protobuf
`wandb.proto.wandb_internal_pb2.Record` messages; no wandb-summary.json or config.yaml), and
`wandb.Api` reads only synced runs. This reader decodes the log framing and parses each record with
the SDK's own protobuf schema, so tests and users can check what a run holds before `wandb sync`.

Framing (the format of the SDK's former `wandb.sdk.internal.datastore`): a 7-byte file header
(":W&B", magic 0xBEE1, version 0); then 32 KiB blocks of chunks, each with a 7-byte header
(CRC-32 uint32, length uint16, type uint8: 1 full, 2 first, 3 middle, 4 last); a block tail shorter
than a header is zero padding.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32768
_CHUNK = struct.Struct("<IHB")  # crc32, length, type


def record_bytes(path: str | Path) -> Iterator[bytes]:
    """The serialized records of one .wandb file, in order. ValueError if it is not a W&B record log."""
    data = Path(path).read_bytes()
    if data[:7] != _HEADER:
        raise ValueError(f"{path}: not a W&B record file (header {data[:7]!r})")
    pos, parts = 7, []
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # block tail padding
            pos += left
            continue
        _, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0:  # zero padding / preallocated end
            pos += left
            continue
        if pos + _CHUNK.size + length > len(data):  # a chunk still being written
            return
        chunk = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        pos += _CHUNK.size + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            parts = [chunk]
        elif kind == 3:
            parts.append(chunk)
        elif kind == 4:
            yield b"".join([*parts, chunk])
            parts = []
        else:
            raise ValueError(f"{path}: unknown chunk type {kind} at byte {pos}")


def _items(items) -> dict[str, Any]:
    out = {}
    for it in items:
        key = it.key or "/".join(it.nested_key)
        if key:
            out[key] = json.loads(it.value_json)
    return out


@dataclass
class OfflineRun:
    """What the record files of one run id hold, merged in file order (a resume appends a file)."""

    run_id: str
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the .wandb files read
    complete: bool = False  # every file ends with the run's exit record (wandb-core writes asynchronously)


def read_run(folder: str | Path, run_id: str | None = None, *, wait_s: float = 0.0) -> OfflineRun:
    """Merge every `run-<id>.wandb` under `folder` (recursively) of run `run_id` (or of the only id there).

    Config and summary updates apply in order (files sorted by their offline-run-<time> folder);
    history rows are returned as logged. FileNotFoundError if there is no such file. wandb-core writes
    the files in a separate process and may still be flushing when `run.finish()` returns: with
    `wait_s` > 0 the files are re-read until each ends with its exit record, for at most wait_s seconds
    (`complete` says whether they did).
    """
    deadline = time.monotonic() + wait_s
    while True:
        run = _read_once(folder, run_id)
        if run.complete or time.monotonic() >= deadline:
            return run
        time.sleep(0.2)


def _read_once(folder: str | Path, run_id: str | None) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(folder).rglob("run-*.wandb"), key=lambda p: p.parent.name)
    files = [f for f in files if not f.parent.name == "latest-run"]
    ids = sorted({f.stem.removeprefix("run-") for f in files})
    if run_id is None:
        if len(ids) != 1:
            raise ValueError(f"{folder}: expected the record files of one run, found ids {ids}; pass run_id")
        run_id = ids[0]
    files = [f for f in files if f.stem == f"run-{run_id}"]
    if not files:
        raise FileNotFoundError(f"no W&B record file of run {run_id!r} under {folder}")
    run = OfflineRun(run_id=run_id, files=files)
    exits = 0
    for f in files:
        for data in record_bytes(f):
            rec = pb.Record()
            rec.ParseFromString(data)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                r = rec.run
                run.name, run.group, run.job_type = r.display_name or run.name, r.run_group or run.group, r.job_type or run.job_type
                run.tags = list(r.tags) or run.tags
                run.config.update(_items(r.config.update))
                run.summary.update(_items(r.summary.update))
            elif kind == "config":
                run.config.update(_items(rec.config.update))
            elif kind == "summary":
                run.summary.update(_items(rec.summary.update))
            elif kind == "history":
                run.history.append(_items(rec.history.item))
            elif kind == "exit":
                exits += 1
    run.complete = exits == len(files)
    run.config.pop("_wandb", None)
    return run
