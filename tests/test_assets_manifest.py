"""manifest.json (lmkl.assets.manifest) and ensure_artifact: current assets are kept, stale or corrupt
ones are detected by their checksums and rebuilt, never used."""

from __future__ import annotations

import json

import pytest

from lmkl.assets.artifacts import ensure_artifact
from lmkl.assets.errors import AssetError
from lmkl.assets.manifest import fingerprint, read_manifest, require_artifact, stale_reason


def _builder(calls):
    def build(out):
        calls.append(out)
        (out / "a.txt").write_text("alpha")
        (out / "sub").mkdir()
        (out / "sub" / "b.bin").write_bytes(b"\x00\x01" * 100)
        return {"kind": "test"}, {"n": 2}

    return build


def test_build_once_then_keep_then_rebuild_on_change_or_corruption(tmp_path):
    assets, calls = tmp_path / "assets", []
    kw = dict(profile="t", stage="download", build=_builder(calls))
    built, entry = ensure_artifact(assets, "thing", fingerprint="f1", **kw)
    assert built and set(entry["files"]) == {"thing/a.txt", "thing/sub/b.bin"}
    assert entry["files"]["thing/a.txt"]["size"] == 5 and entry["versions"]["torch"]
    built, _ = ensure_artifact(assets, "thing", fingerprint="f1", **kw)
    assert not built and len(calls) == 1  # current: kept

    assert stale_reason(assets / "manifest.json", "thing", "f2") == "its config or inputs changed"
    built, _ = ensure_artifact(assets, "thing", fingerprint="f2", **kw)
    assert built and len(calls) == 2

    (assets / "thing" / "sub" / "b.bin").write_bytes(b"\x00\x02" * 100)  # same size, other bytes
    assert "sha256" in stale_reason(assets / "manifest.json", "thing", "f2")
    with pytest.raises(AssetError, match="corrupt or partial"):
        require_artifact(assets / "manifest.json", "thing")
    (assets / "thing" / "a.txt").unlink()  # partial folder
    assert "a.txt: missing" in stale_reason(assets / "manifest.json", "thing", "f2")
    built, _ = ensure_artifact(assets, "thing", fingerprint="f2", **kw)
    assert built and len(calls) == 3
    assert require_artifact(assets / "manifest.json", "thing")["info"] == {"n": 2}


def test_failed_build_leaves_the_old_asset_and_manifest(tmp_path):
    assets = tmp_path / "assets"
    ensure_artifact(assets, "thing", profile="t", stage="s", fingerprint="f1", build=_builder([]))
    before = (assets / "manifest.json").read_text()

    def broken(out):
        (out / "half.txt").write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        ensure_artifact(assets, "thing", profile="t", stage="s", fingerprint="f2", build=broken)
    assert (assets / "manifest.json").read_text() == before
    assert not (assets / "thing" / "half.txt").exists() and not list(assets.glob(".thing.tmp-*"))
    assert stale_reason(assets / "manifest.json", "thing", "f1") is None


def test_unreadable_manifest_means_everything_is_stale(tmp_path):
    (tmp_path / "manifest.json").write_text("{ truncated")
    assert read_manifest(tmp_path / "manifest.json")["artifacts"] == {}
    assert stale_reason(tmp_path / "manifest.json", "policy", "f") == "not built yet"
    with pytest.raises(AssetError, match="lmkl download"):
        require_artifact(tmp_path / "manifest.json", "policy")
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1}) != fingerprint({"a": 2, "b": [1, 2]})
    json.loads(json.dumps(read_manifest(tmp_path / "nothing.json")))


def test_an_entry_without_files_is_not_a_usable_asset(tmp_path):
    from lmkl.assets.manifest import record_artifact

    manifest = tmp_path / "manifest.json"
    record_artifact(manifest, "reward", profile="t", stage="download", fingerprint="x", paths=[], source={})
    with pytest.raises(AssetError, match="no files recorded"):
        require_artifact(manifest, "reward")


def test_prompt_splits_that_end_up_empty_are_refused(tmp_path):
    from lmkl.assets.artifacts import _write_prompt_files

    with pytest.raises(AssetError, match="no test prompts left"):
        _write_prompt_files(tmp_path, ["The movie", "I liked"], ["The movie"])  # every test prompt is a train prompt
