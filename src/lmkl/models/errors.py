"""Errors of the model layer. All are ValueErrors whose message can be shown to a user as is."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model or tokenizer directory is missing or unreadable; the message names the path."""


class VocabularyMismatchError(ValueError):
    """p and q (or a model and its tokenizer) do not share one vocabulary; the message names both sizes."""


class NonFiniteLogitsError(ValueError):
    """A model produced NaN (or +inf) logits at a scored position; the message names the model and position."""
