"""Test helper: record hand-built assets in the manifest, as `lmkl download`/`pretrain` would.

Consumers of assets (train, evaluate, the studies) refuse anything the manifest does not vouch for
(`lmkl.assets.manifest.require_artifact`), so tests that build a tiny policy by hand register it here.
"""

from __future__ import annotations

from pathlib import Path

from lmkl.assets.manifest import record_artifact

_FOLDERS = {"policy": "policy", "prompts": "prompts", "reward": "reward"}


def record_handmade_assets(assets_dir: str | Path, profile: str = "tiny") -> list[str]:
    """Record every asset folder present under `assets_dir` (policy/, prompts/, reward/); returns their names."""
    assets_dir = Path(assets_dir)
    recorded = []
    for name, folder in _FOLDERS.items():
        root = assets_dir / folder
        if not root.is_dir():
            continue
        files = sorted(p.relative_to(assets_dir) for p in root.rglob("*") if p.is_file())
        record_artifact(
            assets_dir / "manifest.json", name, profile=profile, stage="test", fingerprint="handmade",
            paths=files, source={"kind": "built by a test"},
        )
        recorded.append(name)
    return recorded
