"""Shared fixtures: exact toy model pairs from `lmkl.exact` (cheap to build, never mutated by tests)."""

from __future__ import annotations

import pytest

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
