"""Fixtures for the model-layer tests: a tiny offline tokenizer and two tiny random GPT-2s.

Import the fixtures into a test module (`from models_fixtures import tiny_dirs, tiny_pair`).
p has 304 output rows for a 300-token tokenizer (4 padding rows, as in padded embedding matrices);
q has exactly 300. init_std 0.3 gives peaky, clearly different next-token distributions and
eos_boost makes most responses end before the cap, so both kinds of response are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lmkl.models import ModelPair
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

PROMPTS = ["The movie was", "Boring, slow and far too long. I would", "A"]  # different lengths: left padding


@dataclass(frozen=True)
class TinyDirs:
    tokenizer: Path
    p: Path
    q: Path


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> TinyDirs:
    root = tmp_path_factory.mktemp("tiny_models")
    tok = build_tiny_tokenizer(root / "tok")
    p = build_tiny_gpt2(root / "p", 304, seed=0, tokenizer_dir=tok, init_std=0.3, eos_boost=3.0)
    q = build_tiny_gpt2(root / "q", 300, seed=1, tokenizer_dir=tok, init_std=0.3, eos_boost=3.0)
    return TinyDirs(tokenizer=tok, p=p, q=q)


@pytest.fixture(scope="module")
def tiny_pair(tiny_dirs) -> ModelPair:
    return ModelPair.load(tiny_dirs.p, tiny_dirs.q)
