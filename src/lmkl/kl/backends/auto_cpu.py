"""`auto` on CPU: `chunked` until compiling is paid for, then `compiled`.

`compiled` is faster per call in steady state (benchmarks/README.md: whole-batch Inductor kernels,
forward and forward+backward about 2× `chunked`), but its first call in a process compiles for
several seconds per graph (per dtype, per padded/unpadded batch, and the backward once more), longer
than a one-shot `lmkl estimate` or a short evaluation takes. So `auto` starts with `chunked` and times
every forward call; once the process has spent a budget of seconds in them it is a long job (a study,
an evaluation over many prompts, a training run) and later calls go to `compiled`. This is the
ski-rental rule: switch when the time already spent, repeated once more, would save the compile time
at the measured per-call gain, so a job pays at most about twice what the better choice in hindsight
would have cost. `benchmarks/auto_crossover.py` measures the compile time and the gains; the two
budgets are its crossovers, rounded up (figures in benchmarks/README.md): COMPILE_AFTER_S for calls
without gradients, COMPILE_AFTER_TRAIN_S for calls that will be differentiated (only their forward
is timed here, and their switch also compiles the backward graph).

`compiled` must also earn its place: its per-logit forward time over TRIAL_CALLS calls (after the
first, compiling, one) is compared with `chunked`'s so far, and if it is not faster `auto` goes back
to `chunked` for good (on a machine whose compiler emits slow code, or where the cores are so
contended that the worker pool of `chunked` wins). If the compiler fails (no C++ toolchain, an
unsupported platform), a warning says so and `auto` stays with `chunked` for the rest of the process.
Set both budgets to math.inf to never compile.
"""

from __future__ import annotations

import threading
import time
import warnings

import torch

from lmkl.kl.backends.chunked import chunked_rows
from lmkl.kl.backends.compiled import compiled_rows

# Forward seconds in `chunked` after which `auto` tries `compiled`: the crossovers of
# benchmarks/auto_crossover.py (N = 512, V = 50257, 2 threads, cold Inductor cache) on the 2-core dev
# machine — compile 11.6 s, compiled 61 % faster forward and 56 % faster forward+backward, crossovers
# 19 and 8 forward-seconds — rounded up; see benchmarks/README.md.
COMPILE_AFTER_S = 20.0  # calls without gradients
COMPILE_AFTER_TRAIN_S = 10.0  # calls to be differentiated


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
        budget = COMPILE_AFTER_TRAIN_S if needs_grad else COMPILE_AFTER_S
        if not self.compiled_failed and self.spent_s >= budget:
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
    and as long as it is faster here."""
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
