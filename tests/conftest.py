"""Shared test setup (Triton's CPU interpreter) and fixtures: exact toy model pairs from `lmkl.exact` (cheap to build, never mutated by tests), and a stand-in hub cache for the paper profile (tests/hub_standin.py)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

# Every test file may run the `triton` backend (test_kl_edge_cases parametrizes over all backends):
# without CUDA it runs under Triton's CPU interpreter, which must be on whatever file runs first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hub_standin import build_standin_hub
from lmkl.exact import counterexample, random_tabular_pair
from lmkl.kl.backends import auto_cpu

# backend="auto" on CPU compiles once a process has spent its budget of seconds in token statistics
# (a long job); one test process is not one, and a compilation in the middle of the suite would make
# test times depend on test order. Backends are tested by name; test_backends_auto sets its own.
auto_cpu.COMPILE_AFTER_S = auto_cpu.COMPILE_AFTER_TRAIN_S = float("inf")

# Seeds of the random tabular toys used across the statistical tests (2 letters + EOS, ≤ 3 letters:
# 15 strings each).
TOY_SEEDS = (0, 1, 2)


@pytest.fixture(params=TOY_SEEDS, ids=lambda s: f"toy{s}")
def toy_pair(request):
    """A seeded random tabular pair (p, q), q a log-space perturbation of p."""
    return random_tabular_pair(request.param)


@pytest.fixture
def counterexample_pair():
    """The two-step pair of paper-digest §3.2 where Var(rb) > Var(mc)."""
    return counterexample()


@pytest.fixture(scope="session")
def _standin_hub_master(tmp_path_factory):
    return build_standin_hub(tmp_path_factory.mktemp("hf_home_master"))


@pytest.fixture
def standin_hub(_standin_hub_master, tmp_path):
    """HF_HOME of a fresh copy of the stand-in hub cache (lvwerra/gpt2-imdb, lvwerra/distilbert-imdb,
    stanfordnlp/imdb under their real ids; tests may delete repositories from it)."""
    home = tmp_path / "hf_home"
    shutil.copytree(_standin_hub_master, home, symlinks=True)
    return home
