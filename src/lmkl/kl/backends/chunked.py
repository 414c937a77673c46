"""`chunked` backend: plain torch over row chunks with an analytic backward (no autograd graph).

For one row, with log p = z_p − lse_p and log q = z_q − lse_q (lse = log Σ_v exp z_v):

    logp_y = z_p[y] − lse_p,   logq_y = z_q[y] − lse_q,   KL = Σ_v p_v (log p_v − log q_v)

and, for upstream gradients g_lp, g_lq, g_kl (each a scalar per row),

    ∂/∂z_p = g_kl · p ⊙ (log p − log q − KL) + g_lp · (onehot(y) − p)
    ∂/∂z_q = g_kl · (q − p)                  + g_lq · (onehot(y) − q)

The forward saves only the inputs (in their own dtype) and one per-row scalar (KL); the backward
recomputes log p and log q one chunk at a time, so no float32 [N, V] temporary ever exists beyond one
chunk (the gradients themselves are [N, V] in the inputs' dtype, as with any backend).

`chunk_forward` and `chunk_backward` are the chunk bodies; the `fused_linear` backend reuses them
(the `compiled` backend has whole-batch kernels of its own). They take rows already in the accumulation dtype. On CPU the chunks run in parallel,
one per single-threaded worker (`chunk_pool`): the speed then holds up when other processes share
the cores (benchmarks/README.md); each chunk writes only its own rows, so results do not depend on
the order in which chunks finish.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmkl.kl.backends.chunk_pool import run_chunks
from lmkl.kl.backends.torch_rows import accumulation_dtype

# Elements of one float32 [rows, V] chunk temporary. Measured on a 2-core Xeon (2 MiB L2 per core):
# chunks of 2^18 elements (1 MiB) beat larger ones, whose ~6 elementwise passes each fall out of the
# cache (2^21 elements is ~2x slower); a single row is slower again (per-op overhead, one thread).
CHUNK_ELEMENTS = 1 << 18

ChunkForward = Callable[..., tuple[torch.Tensor, ...]]
ChunkBackward = Callable[..., tuple[torch.Tensor | None, torch.Tensor | None]]


def rows_per_chunk(V: int, elements: int = CHUNK_ELEMENTS) -> int:
    """Rows of a [rows, V] chunk holding about `elements` values, at least 2 (one per core)."""
    return max(2, elements // max(V, 1))


def _log_probs(zp: torch.Tensor, zq: torch.Tensor, tok: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(log p [n, V], log q [n, V], log p(y) [n], log q(y) [n]) for rows zp, zq [n, V]."""
    # log_softmax is one fused, vectorized ATen kernel; on a 2-core Xeon it beats logsumexp + sub
    # (four separate passes) by ~2x, which is why the normalizers are not kept (see the backward).
    log_p = torch.log_softmax(zp, dim=-1)  # [n, V]
    log_q = torch.log_softmax(zq, dim=-1)  # [n, V]
    idx = tok.unsqueeze(-1)  # [n, 1]
    return log_p, log_q, log_p.gather(-1, idx).squeeze(-1), log_q.gather(-1, idx).squeeze(-1)


def chunk_forward(zp: torch.Tensor, zq: torch.Tensor, tok: torch.Tensor, entropy: bool = False) -> tuple[torch.Tensor, ...]:
    """(logp_y, logq_y, kl), each [n], for rows zp, zq [n, V] already in the accumulation dtype; with
    `entropy`, a fourth: H(p) = −Σ_v p_v log p_v per row (p = 0 terms contribute 0)."""
    log_p, log_q, logp_y, logq_y = _log_probs(zp, zq, tok)
    p = log_p.exp()
    ent = -(p * log_p).nan_to_num_(nan=0.0).sum(dim=-1) if entropy else None  # before log_p is overwritten
    # log p − log q, in place. Where p = 0 it is −inf (or NaN when q = 0 too) and must contribute 0,
    # not 0·∞ = NaN: nan_to_num zeroes both in one pass instead of a comparison and a masked fill
    # (benchmarks/token_kl.py, N = 2048, V = 50257, idle: 2.24–2.45× → 2.36–2.60× the reference).
    # +inf (p > 0 = q) is kept, so the KL is +inf, as it should be.
    ratio = log_p.sub_(log_q).nan_to_num_(nan=0.0, neginf=0.0, posinf=float("inf"))
    kl = ratio.mul_(p).sum(dim=-1)
    # NaN logits: a NaN in p's row makes p NaN, so kl stays NaN; a NaN in q's row was zeroed above,
    # so take the NaN from log q of the sampled token (NaN for the whole row) instead.
    kl = torch.where(torch.isnan(logq_y), logq_y, kl)
    return (logp_y, logq_y, kl) if ent is None else (logp_y, logq_y, kl, ent)


def chunk_backward(
    zp: torch.Tensor,
    zq: torch.Tensor,
    tok: torch.Tensor,
    kl: torch.Tensor,
    g_lp: torch.Tensor,
    g_lq: torch.Tensor,
    g_kl: torch.Tensor,
    need_p: bool,
    need_q: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(∂/∂zp, ∂/∂zq), each [n, V] in the accumulation dtype (None where not needed); see the module doc.

    zp, zq [n, V]; tok, kl, g_lp, g_lq, g_kl [n]. log p and log q are recomputed with the same kernel
    as the forward, so the gradient is that of exactly the values returned.
    """
    idx = tok.unsqueeze(-1)  # [n, 1]
    g_kl, g_lp, g_lq = g_kl.unsqueeze(-1), g_lp.unsqueeze(-1), g_lq.unsqueeze(-1)  # [n, 1]
    log_p = torch.log_softmax(zp, dim=-1)  # [n, V]
    log_q = torch.log_softmax(zq, dim=-1)  # [n, V]
    p = log_p.exp()
    dzp = dzq = None
    if need_q:
        # g_kl (q − p) + g_lq (onehot − q) = q (g_kl − g_lq) − g_kl p + g_lq onehot
        dzq = torch.exp(log_q).mul_(g_kl - g_lq).sub_(p * g_kl).scatter_add_(-1, idx, g_lq)
    if need_p:
        # p ⊙ (g_kl (log p − log q − KL) − g_lp) + g_lp onehot; 0 where p = 0 (see chunk_forward).
        ratio = log_p.sub_(log_q).sub_(kl.unsqueeze(-1))  # log p − log q − KL, in place
        # A row whose KL is unused (g_kl = 0) contributes no KL term, even where that term is not
        # finite (KL = +inf: q = 0 where p > 0, so ∞ − ∞ and 0·∞ = NaN); autograd through the
        # `torch` backend never visits an unused KL, so its gradient is finite there.
        kl_term = ratio.mul_(g_kl).masked_fill_(g_kl == 0, 0.0)
        dzp = kl_term.sub_(g_lp).mul_(p).masked_fill_(p == 0, 0.0).scatter_add_(-1, idx, g_lp)
    return dzp, dzq


class ChunkedRowStats(torch.autograd.Function):
    """Row statistics over row chunks with the analytic backward; `fwd`/`bwd` are the chunk bodies.

    With `index` ([N] row numbers) only those rows of logits [R, V] are read, one chunk at a time,
    so a padded batch is never gathered into a copy; the gradient rows of the others are 0.
    """

    @staticmethod
    def forward(ctx, logits_p, logits_q, tokens, fwd: ChunkForward, bwd: ChunkBackward, rows: int, index=None,
                schedule: str = "pool"):  # fmt: skip
        N = logits_p.shape[0] if index is None else index.shape[0]  # rows that count
        dtype = accumulation_dtype(logits_p)
        out = logits_p.new_empty((3, N), dtype=dtype)  # logp, logq, kl

        def chunk(i: int) -> None:
            sl = slice(i * rows, (i + 1) * rows)
            zp, zq, tok = _chunk(logits_p, logits_q, tokens, sl, index)
            out[:, sl] = torch.stack(fwd(zp.to(dtype), zq.to(dtype), tok))

        _run(chunk, -(-N // rows), schedule)
        ctx.save_for_backward(logits_p, logits_q, tokens, out[2], index)
        ctx.bwd, ctx.rows, ctx.schedule = bwd, rows, schedule
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx, g_lp, g_lq, g_kl):
        logits_p, logits_q, tokens, kl, index = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        N, dtype, rows = kl.shape[0], kl.dtype, ctx.rows  # rows that count, accumulation dtype, chunk
        # Unused outputs arrive as None: they contribute a zero upstream gradient.
        g_lp, g_lq, g_kl = (kl.new_zeros(N) if g is None else g.to(dtype) for g in (g_lp, g_lq, g_kl))
        # Gradients have the inputs' shape; rows outside `index` (padding) get exact zeros.
        alloc = torch.empty_like if index is None else torch.zeros_like
        grad_p = alloc(logits_p) if need_p else None
        grad_q = alloc(logits_q) if need_q else None

        def chunk(i: int) -> None:
            sl = slice(i * rows, (i + 1) * rows)
            zp, zq, tok = _chunk(logits_p, logits_q, tokens, sl, index)
            dzp, dzq = ctx.bwd(
                zp.to(dtype), zq.to(dtype), tok, kl[sl], g_lp[sl], g_lq[sl], g_kl[sl], need_p, need_q,
            )  # fmt: skip
            for grad, dz in ((grad_p, dzp), (grad_q, dzq)):
                if grad is None:
                    continue
                if index is None:
                    grad[sl] = dz
                else:
                    grad.index_copy_(0, index[sl], dz.to(grad.dtype))

        _run(chunk, -(-N // rows), ctx.schedule)
        return grad_p, grad_q, None, None, None, None, None, None


# How ChunkedRowStats runs its chunks: in order in the caller's thread ("inline", GPUs), or across the
# single-threaded workers of chunk_pool with a lone chunk run inline ("pool", CPU).
SCHEDULES = ("inline", "pool")


def _run(chunk, chunks: int, schedule: str) -> None:
    """chunk(i) for every chunk, as `schedule` says (see SCHEDULES)."""
    if schedule == "inline":
        for i in range(chunks):
            chunk(i)
    else:
        run_chunks(chunk, chunks)


def _chunk(logits_p, logits_q, tokens, sl: slice, index):
    """Rows `sl` of the rows that count: a view without `index`, a chunk-sized gather with it."""
    if index is None:
        return logits_p[sl], logits_q[sl], tokens[sl]
    rows = index[sl]
    return logits_p.index_select(0, rows), logits_q.index_select(0, rows), tokens.index_select(0, rows)


def chunked_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor, rows=None):
    """Backend function: (logp, logq, kl), each [N], from logits [N, V] and tokens [N]; or, with
    `rows` ([N] indices), from those rows of logits [R, V] read in place (see lmkl.kl.backends)."""
    per_chunk = rows_per_chunk(logits_p.shape[-1])
    schedule = "pool" if logits_p.device.type == "cpu" else "inline"  # a GPU parallelizes each operation
    return ChunkedRowStats.apply(
        logits_p, logits_q, tokens, chunk_forward, chunk_backward, per_chunk, rows, schedule
    )


chunked_rows.accepts_row_index = True
