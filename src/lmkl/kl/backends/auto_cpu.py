"""`auto` on CPU: `chunked` until compiling is paid for, then `compiled` for calls without gradients.

`compiled` is faster per forward call in steady state (benchmarks/README.md), but its first call in
a process compiles for ~20-70 s (per dtype, and again for each backward variant), longer than a
whole evaluation on the tiny profile takes. So `auto` starts with `chunked` and times every forward
call; once the process has spent COMPILE_AFTER_S seconds in them, it is a long job (a study, an
evaluation over many prompts) and later calls go to `compiled`. This is the ski-rental rule: switch
when the time already spent, repeated once more, would save the compile time at the measured
per-call gain, so a job pays at most about twice what the better choice in hindsight would have
cost. `benchmarks/auto_crossover.py` measures the compile time and the gain; COMPILE_AFTER_S is its
forwards-only crossover, rounded (figures in benchmarks/README.md).

Calls that will be differentiated (grad mode on and a logits tensor requiring grad: training) stay
with `chunked`: its backward runs chunks on single-threaded workers, and `compiled` forward+backward
was not faster on the shared 2-core machine (auto_crossover: −34 % at load 13), so no compile time
is ever repaid there.

`compiled` must also earn its place: its per-logit time over TRIAL_CALLS calls (after the compiling
one) is compared with `chunked`'s so far, and if it is not faster `auto` goes back to `chunked` for
good. On the shared dev machine it often was not (benchmarks/README.md: at load 13-23 `chunked` on
its worker pool beat `compiled` in most runs), so a fixed rule would have made long jobs slower.
If the compiler fails (no C++ toolchain, an unsupported platform), a warning says so and `auto`
stays with `chunked` for the rest of the process. Set COMPILE_AFTER_S = math.inf to never compile.
"""

from __future__ import annotations

import threading
import time
import warnings

import torch

from lmkl.kl.backends.chunked import chunked_rows
from lmkl.kl.backends.compiled import compiled_rows

# Forward seconds in `chunked` after which `auto` tries `compiled` for calls without gradients: the
# forwards-only crossover of benchmarks/auto_crossover.py on the shared 2-core dev machine at load 13
# (cold compile 65 s, compiled forward 55 % faster: 119 s). At load 20 it measured a 2 % gain (a
# crossover of hours): TRIAL_CALLS below catches such machines. See benchmarks/README.md.
COMPILE_AFTER_S = 120.0


# Timed `compiled` calls (after the one that compiles) before `auto` compares its speed with
# `chunked`'s on this machine and goes back to `chunked` for good if it is not faster.
TRIAL_CALLS = 5


class _Policy:
    """Seconds and logits (rows × vocabulary) through each backend's forwards, and whether `compiled`
    is ruled out (its compiler failed, or it was not faster here)."""

    def __init__(self) -> None:
        self.spent_s = 0.0  # in chunked forwards
        self.chunked_elems = 0
        self.compiled_s = 0.0  # in compiled forwards after each graph's first (compiling) call
        self.compiled_elems = 0
        self.compiled_calls = 0
        self.compiled_failed = False
        self.lock = threading.Lock()

    def choice(self, needs_grad: bool = False) -> str:
        if not needs_grad and not self.compiled_failed and self.spent_s >= COMPILE_AFTER_S:
            return "compiled"
        return "chunked"

    def record_compiled(self, seconds: float, elems: int) -> None:
        """Time one compiled call; after TRIAL_CALLS (the first, compiling, one not counted) rule
        `compiled` out if its seconds per logit are not below chunked's."""
        with self.lock:
            self.compiled_calls += 1
            if self.compiled_calls == 1:
                return
            self.compiled_s += seconds
            self.compiled_elems += elems
            if self.compiled_calls == TRIAL_CALLS + 1 and self.chunked_elems:
                if self.compiled_s / self.compiled_elems >= self.spent_s / self.chunked_elems:
                    self.compiled_failed = True


POLICY = _Policy()


def auto_cpu_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor, rows=None):
    """Backend function (see lmkl.kl.backends): `chunked`, timed, or `compiled` once amortized
    (without gradients only) and as long as it is faster here."""
    needs_grad = torch.is_grad_enabled() and (logits_p.requires_grad or logits_q.requires_grad)
    elems = (logits_p.shape[0] if rows is None else rows.shape[0]) * logits_p.shape[-1]  # logits read
    if POLICY.choice(needs_grad) == "compiled":
        try:
            start = time.perf_counter()
            out = compiled_rows(logits_p, logits_q, tokens, rows)
            POLICY.record_compiled(time.perf_counter() - start, elems)
            return out
        except Exception as err:  # the compiler itself failed: fall back for good
            POLICY.compiled_failed = True
            warnings.warn(
                f"backend='auto': torch.compile failed ({type(err).__name__}: {err}); staying with "
                "'chunked' in this process",
                RuntimeWarning,
                stacklevel=2,
            )
    start = time.perf_counter()
    out = chunked_rows(logits_p, logits_q, tokens, rows)
    with POLICY.lock:
        POLICY.spent_s += time.perf_counter() - start
        POLICY.chunked_elems += elems
    return out


auto_cpu_rows.accepts_row_index = True
