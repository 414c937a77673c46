"""`results/<profile>/assets/manifest.json`: what each asset is, where it came from, and its checksums.

Layout (one entry per artifact; paths relative to the assets folder):

    {"manifest_version": 1, "profile": "tiny",
     "artifacts": {"prompts": {"stage": "download", "fingerprint": "<sha256>", "source": {...},
                               "files": {"prompts/train.jsonl": {"size": 123, "sha256": "..."}, ...},
                               "info": {...}, "versions": {...}, "created": "<UTC time>"}, ...}}

An artifact is *current* when its entry exists, its fingerprint equals the one the stage computes
now (a hash of the config and input checksums that determine it), and every recorded file exists
with the recorded size and sha256. Anything else (a missing file, a truncated or edited one, a
changed config) makes it stale: the stage rebuilds it and never uses the old files. Downstream stages
call `require_artifact` before loading anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from lmkl.assets.errors import AssetError
from lmkl.atomic import atomic_write_json

MANIFEST_VERSION = 1
_PACKAGES = ("lmkl", "torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "datasets", "vadersentiment", "gguf")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys): equal inputs, equal fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def describe_files(assets_root: str | Path, paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """{relative path: {size, sha256}} for each file or, for a folder, every file below it."""
    root = Path(assets_root)
    out: dict[str, dict[str, Any]] = {}
    for p in paths:
        p = root / p
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            out[f.relative_to(root).as_posix()] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
    return out


def versions() -> dict[str, str]:
    """Python and the versions of the packages that shape the assets (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest, or an empty one when the file is missing or unreadable (then everything is stale)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"manifest_version": MANIFEST_VERSION, "artifacts": {}}
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        return {"manifest_version": MANIFEST_VERSION, "artifacts": {}}
    return data


def verify_files(assets_root: str | Path, files: dict[str, dict[str, Any]]) -> list[str]:
    """Problems with recorded files (missing, wrong size, wrong sha256); empty when all match."""
    root = Path(assets_root)
    problems = []
    for rel, want in files.items():
        f = root / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif f.stat().st_size != want["size"]:
            problems.append(f"{rel}: size {f.stat().st_size} != recorded {want['size']}")
        elif sha256_file(f) != want["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


def stale_reason(manifest_path: str | Path, name: str, expected_fingerprint: str) -> str | None:
    """None when artifact `name` is current (see module doc); otherwise why it must be rebuilt."""
    manifest_path = Path(manifest_path)
    entry = read_manifest(manifest_path)["artifacts"].get(name)
    if entry is None:
        return "not built yet"
    if entry.get("fingerprint") != expected_fingerprint:
        return "its config or inputs changed"
    if not entry.get("files"):
        return "the manifest lists no files for it"
    problems = verify_files(manifest_path.parent, entry["files"])
    if problems:
        return "files do not match the manifest (" + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") + ")"
    return None


def record_artifact(
    manifest_path: str | Path,
    name: str,
    *,
    profile: str,
    stage: str,
    fingerprint: str,
    paths: Iterable[str | Path],
    source: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Checksum `paths` (relative to the assets folder) and write the entry for `name` atomically.

    Read-modify-write of the whole file: stages that share a profile's assets run one after the
    other (download, then pretrain), never at the same time.
    """
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    entry = {
        "stage": stage,
        "fingerprint": fingerprint,
        "source": source,
        "files": describe_files(manifest_path.parent, paths),
        "info": info or {},
        "versions": versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    manifest.update({"manifest_version": MANIFEST_VERSION, "profile": profile})
    manifest["artifacts"][name] = entry
    atomic_write_json(manifest_path, manifest)
    return entry


def require_artifact(manifest_path: str | Path, name: str) -> dict[str, Any]:
    """The manifest entry of `name` after checking its files; AssetError if missing or corrupt.

    For the stages that consume assets (train, evaluate, variance): never load unchecked files.
    """
    manifest_path = Path(manifest_path)
    entry = read_manifest(manifest_path)["artifacts"].get(name)
    if entry is None:
        raise AssetError(f"{manifest_path}: no '{name}' asset recorded; run `lmkl download` (and `lmkl pretrain` for tiny) first")
    files = entry.get("files") or {}
    problems = verify_files(manifest_path.parent, files) if files else ["no files recorded"]
    if problems:
        raise AssetError(f"{manifest_path.parent}: asset '{name}' is corrupt or partial ({'; '.join(problems[:3])}); "
                         f"rerun `lmkl {entry.get('stage', 'download')}` to rebuild it")
    return entry
