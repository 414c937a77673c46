"""`auto` on CPU: `chunked` (timed) until COMPILE_AFTER_S seconds are spent, then `compiled` for
calls without gradients; calls to be differentiated switch after COMPILE_AFTER_TRAIN_S.

The compiled backend itself is checked in test_backends.py; here a spy stands in for it, so the
policy's routing is tested without paying a compilation.
"""

from __future__ import annotations

import pytest
import torch

from lmkl.kl import token_stats
from lmkl.kl.backends import _auto_choice, auto_cpu
from lmkl.kl.backends.chunked import chunked_rows


@pytest.fixture
def policy(monkeypatch):
    """A fresh policy and a spy in place of `compiled` (it records the call, then runs chunked)."""
    fresh = auto_cpu._Policy()
    monkeypatch.setattr(auto_cpu, "POLICY", fresh)
    monkeypatch.setattr("lmkl.kl.backends.AUTO_CPU_POLICY", fresh)
    calls = []

    def spy(*args):
        calls.append(args)
        return chunked_rows(*args)

    monkeypatch.setattr(auto_cpu, "compiled_rows", spy)
    fresh.spy_calls = calls
    return fresh


def _inputs():
    g = torch.Generator().manual_seed(0)
    zp, zq = torch.randn(2, 3, 50, generator=g), torch.randn(2, 3, 50, generator=g)
    tokens = torch.randint(0, 50, (2, 3), generator=g)
    return zp, zq, tokens, torch.ones(2, 3, dtype=torch.bool)


def test_chunked_until_the_budget_is_spent(policy, monkeypatch):
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", 3600.0)
    zp, zq, tokens, mask = _inputs()
    stats = token_stats(zp, zq, tokens, mask)
    assert policy.spent_s > 0 and not policy.spy_calls
    assert _auto_choice(zp) == "chunked"
    want = token_stats(zp, zq, tokens, mask, backend="chunked")
    torch.testing.assert_close(stats.kl, want.kl, rtol=0, atol=0)


def test_compiled_once_the_budget_is_spent(policy, monkeypatch):
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", 3600.0)
    zp, zq, tokens, mask = _inputs()
    token_stats(zp, zq, tokens, mask)
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", policy.spent_s)  # the budget is now spent
    assert _auto_choice(zp) == "compiled"
    spent = policy.spent_s
    token_stats(zp, zq, tokens, mask)
    assert len(policy.spy_calls) == 1 and policy.spent_s == spent
    # A call to be differentiated stays with chunked (and is timed) until its own budget is spent;
    # under no_grad it is compiled.
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_TRAIN_S", 3600.0)
    zp.requires_grad_()
    assert _auto_choice(zp) == "chunked"
    token_stats(zp, zq, tokens, mask).kl.sum().backward()
    assert len(policy.spy_calls) == 1 and policy.spent_s > spent
    with torch.no_grad():
        token_stats(zp, zq, tokens, mask)
    assert len(policy.spy_calls) == 2
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_TRAIN_S", policy.spent_s)  # training's budget spent too
    assert _auto_choice(zp) == "compiled"
    token_stats(zp, zq, tokens, mask).kl.sum().backward()
    assert len(policy.spy_calls) == 3


def test_a_failing_compiler_falls_back_to_chunked(policy, monkeypatch):
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", 0.0)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(auto_cpu, "compiled_rows", broken)
    zp, zq, tokens, mask = _inputs()
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        stats = token_stats(zp, zq, tokens, mask)
    want = token_stats(zp, zq, tokens, mask, backend="chunked")
    torch.testing.assert_close(stats.kl, want.kl, rtol=0, atol=0)
    assert _auto_choice(zp) == "chunked"


def test_compiled_is_dropped_when_not_faster_here(policy, monkeypatch):
    """After TRIAL_CALLS timed compiled calls, auto compares seconds per logit with chunked's."""
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", 0.0)
    zp, zq, tokens, mask = _inputs()
    policy.spent_s, policy.chunked_elems = 1.0, 10**9  # chunked: 1 ns per logit, far faster
    for _ in range(auto_cpu.TRIAL_CALLS + 1):  # the first stands for the compiling call
        assert _auto_choice(zp) == "compiled"
        token_stats(zp, zq, tokens, mask)
    assert len(policy.spy_calls) == auto_cpu.TRIAL_CALLS + 1
    assert _auto_choice(zp) == "chunked"  # the spy (chunked inside a call) is slower per logit
    token_stats(zp, zq, tokens, mask)
    assert len(policy.spy_calls) == auto_cpu.TRIAL_CALLS + 1


def test_compiled_stays_when_faster_here(policy, monkeypatch):
    monkeypatch.setattr(auto_cpu, "COMPILE_AFTER_S", 0.0)
    zp, zq, tokens, mask = _inputs()
    policy.spent_s, policy.chunked_elems = 1.0, 1  # chunked: 1 s per logit, far slower
    for _ in range(auto_cpu.TRIAL_CALLS + 2):
        token_stats(zp, zq, tokens, mask)
    assert _auto_choice(zp) == "compiled" and len(policy.spy_calls) == auto_cpu.TRIAL_CALLS + 2
