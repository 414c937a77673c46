"""`compiled` backend: the `chunked` chunk bodies compiled by `torch.compile` (Inductor).

Inductor fuses each chunk body into a few loops over the vocabulary (max, sum of exponentials, the
p-weighted log-ratio) with no [rows, V] temporary at all, so chunks can be larger than in eager mode.

No recompilation across batch sizes or vocabularies: the bodies are compiled with `dynamic=True`,
so rows and V are symbolic. Torch still specializes a dimension of size 1, so a one-row tail chunk
is padded to two rows (the padding row is computed and dropped). A new dtype (float32 / float64) or a
new (need_p, need_q) pair in the backward is one more compilation, each once per process.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from lmkl.kl.backends.chunked import ChunkedRowStats, chunk_backward, chunk_forward, rows_per_chunk

# One chunk of float32 [rows, V] inputs; Inductor streams it, so the size only amortizes the call
# overhead (measured flat from 2^20 to 2^23 elements on a 2-core Xeon).
CHUNK_ELEMENTS = 1 << 21


@functools.cache
def _compiled(fn):
    # Built on first use: importing lmkl.kl must not pay for (or require) Inductor.
    return torch.compile(fn, dynamic=True, fullgraph=True)


def _pad_rows(x: torch.Tensor) -> torch.Tensor:
    """Append one zero row to a one-row chunk (size 1 would be specialized and recompiled)."""
    return F.pad(x, (0, 0, 0, 1)) if x.dim() == 2 else F.pad(x, (0, 1))


def compiled_forward(zp: torch.Tensor, zq: torch.Tensor, tok: torch.Tensor) -> tuple[torch.Tensor, ...]:
    n = zp.shape[0]  # rows of this chunk
    # Detached: slices of a leaf that requires grad carry requires_grad, a guard that would recompile.
    zp, zq = zp.detach(), zq.detach()
    if n == 1:
        zp, zq, tok = _pad_rows(zp), _pad_rows(zq), _pad_rows(tok)
    return tuple(v[:n] for v in _compiled(chunk_forward)(zp, zq, tok))


def compiled_backward(zp, zq, tok, kl, g_lp, g_lq, g_kl, need_p: bool, need_q: bool):
    n = zp.shape[0]  # rows of this chunk
    zp, zq = zp.detach(), zq.detach()  # see compiled_forward
    if n == 1:
        zp, zq, tok, kl, g_lp, g_lq, g_kl = map(_pad_rows, (zp, zq, tok, kl, g_lp, g_lq, g_kl))
    dzp, dzq = _compiled(chunk_backward)(zp, zq, tok, kl, g_lp, g_lq, g_kl, need_p, need_q)
    return (None if dzp is None else dzp[:n]), (None if dzq is None else dzq[:n])


def compiled_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor):
    """Backend function: (logp, logq, kl), each [N], from logits [N, V] and tokens [N]."""
    rows = rows_per_chunk(logits_p.shape[-1], CHUNK_ELEMENTS)
    return ChunkedRowStats.apply(logits_p, logits_q, tokens, compiled_forward, compiled_backward, rows)
