"""`compiled` backend: the `chunked` chunk bodies compiled by `torch.compile` (Inductor).

Inductor fuses each chunk body into a few loops over the vocabulary (max, sum of exponentials, the
p-weighted log-ratio) with no [rows, V] temporary at all, so chunks can be larger than in eager mode.

On CPU the chunks run on the single-threaded workers of `chunk_pool`, always (a lone chunk too), so
the kernels are generated for one thread: no OpenMP region per chunk, whose barriers stall when other
processes share the cores (benchmarks/README.md, busy rows).

No recompilation across batch sizes or vocabularies: the bodies are compiled with `dynamic=True`,
so rows and V are symbolic. Torch still specializes a dimension of size 1, so no chunk ever has one
row: the chunk size is nudged up until the last chunk has two rows or more, and a single real
position goes to the eager `chunked` bodies (the same math, nothing to amortize a graph over). A new dtype (float32 / float64) or a
new (need_p, need_q) pair in the backward is one more compilation, each once per process.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import torch

from lmkl.kl.backends.chunked import (
    ChunkedRowStats,
    chunk_backward,
    chunk_forward_for_compile,
    chunked_rows,
    rows_per_chunk,
)

# One chunk of float32 [rows, V] inputs; Inductor streams it, so the size only amortizes the call
# overhead (measured flat from 2^20 to 2^23 elements on a 2-core Xeon).
CHUNK_ELEMENTS = 1 << 21
# On CPU the chunks run on chunk_pool's single-threaded workers, each a one-thread Inductor kernel:
# smaller chunks keep both workers busy to the end when one is descheduled (N = 512, V = 50257 at
# load 15: 360 ms this way against 561 ms for `chunked`; the 2-thread OpenMP kernels over 2^21-element
# chunks in order took 1704 ms against 1221 ms at load 22).
CPU_CHUNK_ELEMENTS = 1 << 18


@functools.cache
def _compiled(fn):
    # Built on first use: importing lmkl.kl must not pay for (or require) Inductor.
    compiled = torch.compile(fn, dynamic=True, fullgraph=True)
    warm: set[tuple] = set()  # (dtype, flags) already compiled
    first = threading.Lock()

    def call(*args):
        # Chunks are row slices (views) of the whole [N, V] logits. With duck sizing, the first call
        # of a single-chunk batch (rows = N) would guard on "chunk rows == base rows" and the first
        # batch of several chunks would recompile; without it, sizes stay independent symbols.
        key = (args[0].dtype, *(a for a in args if isinstance(a, bool)))
        with _no_duck_shapes():
            if key in warm:
                return compiled(*args)
            # The first chunks of a new graph reach every worker at once: one compiles, the others
            # wait for it instead of compiling the same graph side by side.
            with first:
                out = compiled(*args)
                warm.add(key)
                return out

    return call


_duck_lock = threading.Lock()
_duck_users = 0  # calls inside _no_duck_shapes now, on any thread
_duck_saved = True


@contextlib.contextmanager
def _no_duck_shapes():
    """use_duck_shape=False while any call is inside. The setting is process-wide and the chunks run
    on several workers at once: a plain patch per call would let one worker restore it while
    another compiles."""
    global _duck_users, _duck_saved
    cfg = torch.fx.experimental._config
    with _duck_lock:
        if _duck_users == 0:
            _duck_saved, cfg.use_duck_shape = cfg.use_duck_shape, False
        _duck_users += 1
    try:
        yield
    finally:
        with _duck_lock:
            _duck_users -= 1
            if _duck_users == 0:
                cfg.use_duck_shape = _duck_saved


def _unview(x: torch.Tensor) -> torch.Tensor:
    """The same memory as a plain tensor: no autograd history, no view base.

    Dynamo guards on an input's requires_grad and on the shape of its view base (a chunk of a [N, V]
    gather, of a [B·T, V] reshape of [B, T, V] logits, of a padded row...), each a recompilation.
    """
    return torch.empty(0, dtype=x.dtype, device=x.device).set_(
        x.untyped_storage(), x.storage_offset(), x.shape, x.stride()
    )


def compiled_forward(zp: torch.Tensor, zq: torch.Tensor, tok: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return _compiled(chunk_forward_for_compile)(*map(_unview, (zp, zq, tok)))


def compiled_backward(zp, zq, tok, kl, g_lp, g_lq, g_kl, need_p: bool, need_q: bool):
    args = map(_unview, (zp, zq, tok, kl, g_lp, g_lq, g_kl))
    return _compiled(chunk_backward)(*args, need_p, need_q)


def rows_without_singleton(N: int, rows: int) -> int:
    """The smallest chunk size ≥ rows whose last chunk is not a single row (for N ≥ 2)."""
    while N % rows == 1 and rows < N:
        rows += 1
    return rows


def compiled_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor, rows=None):
    """Backend function: (logp, logq, kl), each [N], from logits [N, V] and tokens [N]; or, with
    `rows` ([N] indices), from those rows of logits [R, V] read in place (see lmkl.kl.backends)."""
    N = logits_p.shape[0] if rows is None else rows.shape[0]  # rows that count
    V = logits_p.shape[-1]  # vocabulary
    if N < 2:
        # A single real position (or none): eager mode, as a compiled graph would specialize size 1.
        return chunked_rows(logits_p, logits_q, tokens, rows)
    cpu = logits_p.device.type == "cpu"
    per_chunk = rows_without_singleton(N, rows_per_chunk(V, CPU_CHUNK_ELEMENTS if cpu else CHUNK_ELEMENTS))
    schedule = "workers" if cpu else "inline"
    return ChunkedRowStats.apply(
        logits_p, logits_q, tokens, compiled_forward, compiled_backward, per_chunk, rows, schedule
    )


compiled_rows.accepts_row_index = True
