"""Backends of the per-token statistics behind `lmkl.kl.token_stats`.

A backend maps rows of logits to the three per-row statistics, for the N unmasked rows only:

    fn(logits_p [N, V], logits_q [N, V], tokens [N]) -> (logp [N], logq [N], kl [N])

in the accumulation dtype (float64 for float64 inputs, float32 otherwise), differentiable with
respect to both logits. A backend whose function has the attribute `accepts_row_index = True` is
instead called as `fn(flat_p [R, V], flat_q [R, V], flat_tokens [R], rows=index [N])` and reads only
the indexed rows, chunk by chunk, so that padded batches are never copied. Validation, masking and the scatter back to [B, T] happen once, in
`lmkl.kl.token_stats`; nothing outside `lmkl.kl` imports a backend directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmkl.kl.backends.torch_rows import torch_rows

RowStatsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

# name -> function; faster backends register themselves here (see `register`).
BACKENDS: dict[str, RowStatsFn] = {"torch": torch_rows}


def register(name: str, fn: RowStatsFn) -> None:
    BACKENDS[name] = fn


def available() -> list[str]:
    return sorted(BACKENDS)


def resolve(backend: str, logits: torch.Tensor) -> RowStatsFn:
    """Return the backend function for a name; "auto" picks the fastest one for this device and dtype."""
    if backend == "auto":
        return BACKENDS[_auto_choice(logits)]
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {['auto', *available()]}, got {backend!r}")
    return BACKENDS[backend]


def _auto_choice(logits: torch.Tensor) -> str:
    return "torch"
