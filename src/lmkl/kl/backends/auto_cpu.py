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

# Forward seconds in `chunked` after which `auto` switches to `compiled` for calls without gradients:
# the forwards-only crossover of benchmarks/auto_crossover.py on the shared 2-core dev machine
# (cold compile 65 s, compiled forward 55 % faster: 119 s), see benchmarks/README.md.
COMPILE_AFTER_S = 120.0


class _Policy:
    """Time spent in chunked forwards, and whether `compiled` is in use or known broken."""

    def __init__(self) -> None:
        self.spent_s = 0.0
        self.compiled_failed = False
        self.lock = threading.Lock()

    def choice(self, needs_grad: bool = False) -> str:
        if not needs_grad and not self.compiled_failed and self.spent_s >= COMPILE_AFTER_S:
            return "compiled"
        return "chunked"


POLICY = _Policy()


def auto_cpu_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor, rows=None):
    """Backend function (see lmkl.kl.backends): `chunked`, timed, or `compiled` once amortized
    (without gradients only)."""
    needs_grad = torch.is_grad_enabled() and (logits_p.requires_grad or logits_q.requires_grad)
    if POLICY.choice(needs_grad) == "compiled":
        try:
            return compiled_rows(logits_p, logits_q, tokens, rows)
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
    return out


auto_cpu_rows.accepts_row_index = True
