"""Errors the asset builders raise; each message says what is missing and how to provide it."""

from __future__ import annotations


class AssetError(RuntimeError):
    """An asset that cannot be built or used (missing input, no network, corrupt files)."""


class MissingExtraError(AssetError):
    """An optional dependency is not installed; the message holds the pip command that installs it."""
