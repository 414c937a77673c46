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

import importlib.util
from collections.abc import Callable

import torch

from lmkl.kl.backends.auto_cpu import POLICY as AUTO_CPU_POLICY
from lmkl.kl.backends.auto_cpu import auto_cpu_rows
from lmkl.kl.backends.chunked import chunked_rows
from lmkl.kl.backends.compiled import compiled_rows
from lmkl.kl.backends.torch_rows import torch_rows

RowStatsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

# name -> function; faster backends register themselves here (see `register`).
#   torch     reference: autograd through log_softmax (saves [N, V] activations)
#   chunked   row chunks in parallel on single-threaded workers, analytic backward, saves only the
#             inputs (the CPU default, until `compiled` is amortized: auto_cpu)
#   compiled  whole-batch Inductor kernels for the forward and the analytic backward (each graph
#             compiles on its first call in a process, seconds)
#   triton    single-pass online-softmax kernel and fused backward (CUDA; CPU only under the
#             interpreter, TRITON_INTERPRET=1); registered when triton is importable
BACKENDS: dict[str, RowStatsFn] = {"torch": torch_rows, "chunked": chunked_rows, "compiled": compiled_rows}


def _triton_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor):
    # Imported on first use: importing triton costs ~1 s and most CPU users never need it.
    from lmkl.kl.backends.triton_kernel import triton_rows

    return triton_rows(logits_p, logits_q, tokens)


HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON:
    BACKENDS["triton"] = _triton_rows


def register(name: str, fn: RowStatsFn) -> None:
    BACKENDS[name] = fn


def available() -> list[str]:
    return sorted(BACKENDS)


def resolve(backend: str, logits: torch.Tensor) -> RowStatsFn:
    """Return the backend function for a name; "auto" picks the fastest one for this device and dtype."""
    if backend == "auto":
        if logits.device.type == "cpu":
            return auto_cpu_rows  # chunked, then compiled once its compile time is paid for
        return BACKENDS[_auto_choice(logits)]
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {['auto', *available()]}, got {backend!r}")
    return BACKENDS[backend]


def _auto_choice(logits: torch.Tensor) -> str:
    """CUDA: the Triton kernel when importable, else `compiled`. CPU: `chunked`, then `compiled` once
    the process has spent the budget of `auto_cpu` seconds in token statistics (see auto_cpu)."""
    if logits.device.type == "cuda":
        return "triton" if HAS_TRITON else "compiled"
    if logits.device.type == "cpu":
        return AUTO_CPU_POLICY.choice(torch.is_grad_enabled() and logits.requires_grad)
    return "chunked"
