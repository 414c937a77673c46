"""`compiled` backend: the per-token statistics and their analytic backward as whole-batch Inductor kernels.

For one row, with the maxima m = max_v z_v, x = z − m and s = Σ_v exp x_v (centring as in the Triton
kernel, so that no large logit means cancel):

    lse = m + log s,   log p(y) = z_p[y] − lse_p,   log q(y) = z_q[y] − lse_q,
    KL  = a / s_p − log s_p + log s_q,   a = Σ_v exp(x_p,v) (x_p,v − x_q,v)

The forward is one function of the logits that `torch.compile` (Inductor) turns into a loop for the
two maxima and one loop with two exponentials per logit pair — as many as the MC minimum's two
logsumexps — over the whole batch at once: no [N, V] temporary exists, so, unlike eager mode, nothing
needs chunking. It saves the inputs and lse_p, lse_q, KL ([N] each); the backward

    ∂/∂z_p = p ⊙ (g_kl (log p − log q − KL) − g_lp) + g_lp onehot(y)
    ∂/∂z_q = g_kl (q − p) + g_lq (onehot(y) − q)

is one more fused pass that reads both logits and writes the gradient (derivation: `chunked`'s doc).
p = 0 terms contribute 0 (−inf logits are a masked vocabulary); p > 0 = q gives KL = +inf; NaN
logits give NaN statistics for their row; a row whose KL is unused (g_kl = 0) gets no KL term in its
gradient (finite where torch's is). Rows given by an index (`rows`, a padded batch) are read in place
by indirect loads inside the kernels, never gathered into a copy.

Why whole-batch kernels and not the chunks of `chunked`: measured on the 2-core dev machine (N = 2048,
V = 50257, quiet; benchmarks/README.md), these kernels run the forward in 1.20× the time of the
compiled MC minimum (log p(y), log q(y) by logsumexp) and forward+backward in 0.66×, 8.8× and 10.3×
faster than the authors' reference, where the earlier compiled chunk bodies took 2.4-3.4× the MC
minimum: per chunk, each call paid Python, guard and kernel-launch overhead and re-read the chunk
once per reduction. A few large OpenMP regions per call also hold up when other processes share the
cores, as the reference's few large operations do (busy rows in benchmarks/README.md).

No recompilation across batch sizes or vocabularies: `dynamic=True` keeps rows and V symbolic.
Torch still specializes a dimension of size 1, so a single real position goes to the eager `chunked`
bodies (the same math, nothing to amortize a graph over). Each dtype, each (need_p, need_q) pair of
the backward and the indexed/plain variants is one compilation, once per process (~5-20 s each).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import torch

from lmkl.kl.backends.chunked import chunked_rows
from lmkl.kl.backends.torch_rows import accumulation_dtype


def _centred_sums(zp: torch.Tensor, zq: torch.Tensor):
    """(lse_p, lse_q, KL), each [n], from rows zp, zq [n, V] in the accumulation dtype."""
    m_p, m_q = zp.amax(dim=-1, keepdim=True), zq.amax(dim=-1, keepdim=True)  # [n, 1]
    xp, xq = zp - m_p, zq - m_q  # [n, V], ≤ 0 (never materialized: Inductor fuses them into the loops)
    ep = xp.exp()
    s_p, s_q = ep.sum(dim=-1), xq.exp().sum(dim=-1)  # [n]
    a = torch.where(ep > 0, ep * (xp - xq), 0.0).sum(dim=-1)  # p = 0 terms add nothing
    log_sp, log_sq = s_p.log(), s_q.log()
    return m_p.squeeze(-1) + log_sp, m_q.squeeze(-1) + log_sq, a / s_p - log_sp + log_sq


def _select(z: torch.Tensor, tok: torch.Tensor, rows: torch.Tensor | None, dtype: torch.dtype):
    """The rows that count of z [R, V] (all, or those of `rows`) in `dtype`, and their tokens."""
    if rows is not None:
        z, tok = z.index_select(0, rows), tok.index_select(0, rows)
    return z.to(dtype), tok


def forward_body(zp, zq, tok, rows=None):
    """(logp_y, logq_y, kl, lse_p, lse_q), each [N], for the rows that count."""
    dtype = accumulation_dtype(zp)
    (zp, tok), (zq, _) = _select(zp, tok, rows, dtype), _select(zq, tok, rows, dtype)
    lse_p, lse_q, kl = _centred_sums(zp, zq)
    idx = tok.unsqueeze(-1)  # [N, 1]
    logp_y = zp.gather(-1, idx).squeeze(-1) - lse_p
    logq_y = zq.gather(-1, idx).squeeze(-1) - lse_q
    return logp_y, logq_y, kl, lse_p, lse_q


def backward_body(zp_in, zq_in, tok_in, lse_p, lse_q, kl, g_lp, g_lq, g_kl, rows, need_p: bool, need_q: bool):
    """(∂/∂zp, ∂/∂zq) in the inputs' shape and dtype (None where not needed); see the module doc."""
    dtype = lse_p.dtype
    (zp, tok), (zq, _) = _select(zp_in, tok_in, rows, dtype), _select(zq_in, tok_in, rows, dtype)
    log_p, log_q = zp - lse_p.unsqueeze(-1), zq - lse_q.unsqueeze(-1)  # [N, V]
    p = log_p.exp()
    onehot = torch.arange(zp.shape[-1], device=zp.device) == tok.unsqueeze(-1)  # [N, V]
    g_kl, g_lp, g_lq = g_kl.unsqueeze(-1), g_lp.unsqueeze(-1), g_lq.unsqueeze(-1)  # [N, 1]
    dzp = dzq = None
    if need_p:
        kl_term = torch.where(g_kl == 0, 0.0, g_kl * (log_p - log_q - kl.unsqueeze(-1)))
        dzp = _place(torch.where(p == 0, 0.0, p * (kl_term - g_lp)) + torch.where(onehot, g_lp, 0.0), zp_in, rows)
    if need_q:
        dzq = _place(log_q.exp() * (g_kl - g_lq) - g_kl * p + torch.where(onehot, g_lq, 0.0), zq_in, rows)
    return dzp, dzq


def _place(dz: torch.Tensor, like: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """dz [N, V] as the gradient of `like` [R, V]: itself, or scattered into zeros at `rows` (padding: 0)."""
    if rows is None:
        return dz.to(like.dtype)
    return torch.zeros_like(like).index_put((rows,), dz.to(like.dtype))


@functools.cache
def _compiled(fn):
    # Built on first use: importing lmkl.kl must not pay for (or require) Inductor.
    compiled = torch.compile(fn, dynamic=True, fullgraph=True)

    def call(*args):
        # With duck sizing, a first call whose rows happen to equal another size (N = R, or N = V)
        # would guard on that equality and recompile at the next batch; without it, sizes stay
        # independent symbols.
        with _no_duck_shapes():
            return compiled(*args)

    return call


_duck_lock = threading.Lock()
_duck_users = 0  # calls inside _no_duck_shapes now, on any thread
_duck_saved = True


@contextlib.contextmanager
def _no_duck_shapes():
    """use_duck_shape=False while any call is inside. The setting is process-wide: a plain patch per
    call would let one thread restore it while another compiles."""
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


def _unview(x: torch.Tensor | None) -> torch.Tensor | None:
    """The same memory as a plain tensor: no autograd history, no view base.

    Dynamo guards on an input's requires_grad and on the shape of its view base (a [B·T, V] reshape
    of [B, T, V] logits, a padded row...), each a recompilation.
    """
    if x is None:
        return None
    return torch.empty(0, dtype=x.dtype, device=x.device).set_(
        x.untyped_storage(), x.storage_offset(), x.shape, x.stride()
    )


class CompiledRowStats(torch.autograd.Function):
    """(logp, logq, kl) [N] by the compiled forward; the compiled analytic backward."""

    @staticmethod
    def forward(ctx, logits_p, logits_q, tokens, rows=None):
        args = tuple(map(_unview, (logits_p, logits_q, tokens, rows)))
        logp, logq, kl, lse_p, lse_q = _compiled(forward_body)(*args)
        ctx.save_for_backward(logits_p, logits_q, tokens, rows, lse_p, lse_q, kl)
        return logp, logq, kl

    @staticmethod
    def backward(ctx, g_lp, g_lq, g_kl):
        logits_p, logits_q, tokens, rows, lse_p, lse_q, kl = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Unused outputs arrive as None: they contribute a zero upstream gradient.
        g_lp, g_lq, g_kl = (torch.zeros_like(kl) if g is None else g.to(kl.dtype) for g in (g_lp, g_lq, g_kl))
        args = map(_unview, (logits_p, logits_q, tokens, lse_p, lse_q, kl, g_lp, g_lq, g_kl, rows))
        grad_p, grad_q = _compiled(backward_body)(*args, need_p, need_q)
        return grad_p, grad_q, None, None


def compiled_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor, rows=None):
    """Backend function: (logp, logq, kl), each [N], from logits [N, V] and tokens [N]; or, with
    `rows` ([N] indices), from those rows of logits [R, V] read in place (see lmkl.kl.backends)."""
    N = logits_p.shape[0] if rows is None else rows.shape[0]  # rows that count
    if N < 2:
        # A single real position (or none): eager mode, as a compiled graph would specialize size 1.
        return chunked_rows(logits_p, logits_q, tokens, rows)
    return CompiledRowStats.apply(logits_p, logits_q, tokens, rows)


compiled_rows.accepts_row_index = True
