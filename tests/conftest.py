"""Shared test setup (Triton's CPU interpreter) and fixtures: exact toy model pairs from `lmkl.exact` (cheap to build, never mutated by tests)."""

from __future__ import annotations

import os

import pytest
import torch

# Every test file may run the `triton` backend (test_kl_edge_cases parametrizes over all backends):
# without CUDA it runs under Triton's CPU interpreter, which must be on whatever file runs first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from lmkl.exact import counterexample, random_tabular_pair

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
