"""Chunks in parallel, one thread each, instead of every small operation split across the cores.

Why: run serially, each chunk operation of `chunked` (a [rows, V] log_softmax, exp, sub, ...) is an
OpenMP parallel region over the intra-op threads, and every region ends in a barrier. On a machine
whose cores other processes also use (a shared node, CI, a pipeline running jobs side by side) the
OS deschedules one of those threads for a whole time slice, and every one of the thousands of
barriers waits for it: measured 0.11-0.56× the authors' reference (a few large operations) with
three other 2-thread jobs on the 2 cores, against 2.2-2.8× on a quiet machine. Here W worker threads
(W = torch.get_num_threads() at the call) each take the next chunk from a shared queue and run its
whole body with one intra-op thread: no barrier inside a chunk, and a descheduled worker delays only
its own chunk while the others keep draining the queue (benchmarks/README.md, busy rows).

torch's intra-op thread count is per thread (OpenMP's nthreads ICV, MKL's local setting): each worker
sets its own to 1 when it starts. `torch.set_num_threads` also records the count that threads
started later inherit, so the pool puts the caller's value back once every worker is up; the
caller's own setting is never changed. Workers run their bodies under `torch.no_grad()` (grad mode
is per thread, and the chunk bodies are differentiated analytically). A forked child drops the
inherited pool (its threads do not survive a fork) and builds its own on first use.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import torch


def _single_threaded(ready: threading.Barrier) -> None:
    torch.set_num_threads(1)  # this worker's own OpenMP/MKL thread count
    ready.wait()


@functools.cache
def _executor(workers: int) -> ThreadPoolExecutor:
    inherited = torch.get_num_threads()
    ready = threading.Barrier(workers + 1)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="lmkl-chunk", initializer=_single_threaded,
                              initargs=(ready,))  # fmt: skip
    for _ in range(workers):  # one task per worker, so that all of them start now
        pool.submit(int)
    ready.wait()
    torch.set_num_threads(inherited)  # what threads started later inherit, as before the pool
    return pool


os.register_at_fork(after_in_child=_executor.cache_clear)


def run_chunks(body: Callable[[int], None], chunks: int, workers: int | None = None) -> None:
    """Call body(i) for i in range(chunks), in parallel on `workers` single-threaded workers.

    `body` writes its results itself (each chunk into its own slice). One chunk, or one worker, runs
    inline in the caller's thread with the caller's thread count. Exceptions propagate.
    """
    workers = torch.get_num_threads() if workers is None else workers
    if chunks <= 1 or workers <= 1:
        for i in range(chunks):
            body(i)
        return
    pool = _executor(max(workers, 1))

    def task(i: int) -> None:
        with torch.no_grad():
            body(i)

    _drain(pool.map(task, range(chunks)))


def _drain(results: Iterable[None]) -> None:
    for _ in results:  # re-raises the first failing chunk's exception
        pass
