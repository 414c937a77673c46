"""`triton` backend: one program per row, a single pass over vocabulary blocks (online softmax).

Forward, for one row, over blocks of BLOCK_V logits, with running maxima m_p, m_q:

    s_p = Σ exp(z_p − m_p),   s_q = Σ exp(z_q − m_q),
    a   = Σ exp(z_p − m_p) · ((z_p − m_p) − (z_q − m_q))

and when a block raises the maxima by Δ_p, Δ_q every sum is rescaled by α = exp(−Δ_p) (s_q by
exp(−Δ_q)) and a is re-centred first: a ← α (a − s_p (Δ_p − Δ_q)). At the end

    lse = m + log s,   KL = a / s_p − log s_p + log s_q,   logp_y = z_p[y] − lse_p.

Keeping the log-ratio centred on the running maxima keeps a of the order of the KL itself, instead of
the difference of two large logit means (the cancellation of Σ p (z_p − z_q) − (lse_p − lse_q)).
Masked logits (−inf): a p = 0 entry adds nothing; a p > 0 entry with z_q = −inf sets a flag and the
KL is +inf (not accumulated, so no ∞ − ∞ in the rescaling). NaN logits make s NaN, hence every
output of the row NaN.

Backward (fused, one more pass): p = exp(z_p − lse_p), q = exp(z_q − lse_q) and the gradients of
`chunked` (see its module doc), written in the logits' dtype. Accumulation is float32 (float64 for
float64 inputs). Reads 2·V and writes 2·V values per row: memory-bound on a GPU.

CPU: Triton kernels run on CPU tensors only under Triton's interpreter (TRITON_INTERPRET=1 in the
environment before the first call); the kernels are built on first use, so setting it after importing
lmkl is enough. `auto` picks this backend only for CUDA tensors.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from triton import knobs

from lmkl.kl.backends.torch_rows import accumulation_dtype

# Largest vocabulary block: 4096 float32 per model stay in registers with 8 warps on an H100.
MAX_BLOCK_V = 4096
# Floor of the running maxima, finite so that the first rescaling exp(floor − m) is 0, never NaN.
_FLOOR = -3.0e38


def _fwd(zp_ptr, zq_ptr, tok_ptr, out_ptr, N, V, stride_p, stride_q,
         BLOCK_V: tl.constexpr, ACC: tl.constexpr, FLOOR: tl.constexpr):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    zp_row = zp_ptr + row * stride_p
    zq_row = zq_ptr + row * stride_q
    m_p = tl.full((), FLOOR, ACC)
    m_q = tl.full((), FLOOR, ACC)
    s_p = tl.zeros((), ACC)
    s_q = tl.zeros((), ACC)
    a = tl.zeros((), ACC)
    hit_inf = tl.zeros((), tl.int32)  # some p > 0 where q = 0
    for start in range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        valid = cols < V
        zp = tl.load(zp_row + cols, mask=valid, other=-float("inf")).to(ACC)
        zq = tl.load(zq_row + cols, mask=valid, other=-float("inf")).to(ACC)
        mp_new = tl.maximum(m_p, tl.max(zp, 0))
        mq_new = tl.maximum(m_q, tl.max(zq, 0))
        alpha_p = tl.exp(m_p - mp_new)
        a = alpha_p * (a - s_p * ((mp_new - m_p) - (mq_new - m_q)))
        s_p = s_p * alpha_p
        s_q = s_q * tl.exp(m_q - mq_new)
        xp = zp - mp_new
        xq = zq - mq_new
        ep = tl.exp(xp)
        s_p += tl.sum(ep, 0)
        s_q += tl.sum(tl.exp(xq), 0)
        q_pos = xq > -float("inf")
        a += tl.sum(tl.where((ep > 0) & q_pos, ep * (xp - xq), 0.0), 0)
        hit_inf = tl.maximum(hit_inf, tl.max(tl.where((ep > 0) & (~q_pos), 1, 0), 0))
        m_p = mp_new
        m_q = mq_new
    log_sp = tl.log(s_p)
    log_sq = tl.log(s_q)
    kl = a / s_p - log_sp + log_sq
    # +inf only when the row is otherwise well defined: NaN logits (s NaN) must stay NaN.
    kl = tl.where((hit_inf > 0) & (s_p == s_p) & (s_q == s_q), float("inf"), kl)
    y = tl.load(tok_ptr + row)
    logp_y = tl.load(zp_row + y).to(ACC) - (m_p + log_sp)
    logq_y = tl.load(zq_row + y).to(ACC) - (m_q + log_sq)
    # out is [5, N]: logp_y, logq_y, kl, lse_p, lse_q
    tl.store(out_ptr + row, logp_y)
    tl.store(out_ptr + N + row, logq_y)
    tl.store(out_ptr + 2 * N + row, kl)
    tl.store(out_ptr + 3 * N + row, m_p + log_sp)
    tl.store(out_ptr + 4 * N + row, m_q + log_sq)


def _bwd(zp_ptr, zq_ptr, tok_ptr, stats_ptr, g_ptr, dzp_ptr, dzq_ptr, N, V, stride_p, stride_q, stride_d,
         BLOCK_V: tl.constexpr, ACC: tl.constexpr, NEED_P: tl.constexpr, NEED_Q: tl.constexpr):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    zp_row = zp_ptr + row * stride_p
    zq_row = zq_ptr + row * stride_q
    kl = tl.load(stats_ptr + 2 * N + row)
    lse_p = tl.load(stats_ptr + 3 * N + row)
    lse_q = tl.load(stats_ptr + 4 * N + row)
    g_lp = tl.load(g_ptr + row)  # g is [3, N]: upstream gradients of logp_y, logq_y, kl
    g_lq = tl.load(g_ptr + N + row)
    g_kl = tl.load(g_ptr + 2 * N + row)
    y = tl.load(tok_ptr + row)
    for start in range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        valid = cols < V
        onehot = cols == y
        log_p = tl.load(zp_row + cols, mask=valid, other=-float("inf")).to(ACC) - lse_p
        log_q = tl.load(zq_row + cols, mask=valid, other=-float("inf")).to(ACC) - lse_q
        p = tl.exp(log_p)
        if NEED_P:
            # p ⊙ (g_kl (log p − log q − KL) − g_lp) + g_lp onehot; 0 where p = 0 (no 0·∞). An
            # unused KL (g_kl = 0) adds no term, even where it is not finite (KL = +inf: ∞ − ∞).
            kl_term = tl.where(g_kl != 0, g_kl * (log_p - log_q - kl), 0.0)
            dzp = tl.where(p > 0, p * (kl_term - g_lp), 0.0)
            dzp += tl.where(onehot, g_lp, 0.0)
            tl.store(dzp_ptr + row * stride_d + cols, dzp.to(dzp_ptr.dtype.element_ty), mask=valid)
        if NEED_Q:
            q = tl.exp(log_q)
            dzq = g_kl * (q - p) + g_lq * (tl.where(onehot, 1.0, 0.0) - q)
            tl.store(dzq_ptr + row * stride_d + cols, dzq.to(dzq_ptr.dtype.element_ty), mask=valid)


@functools.cache
def _kernels(interpret: bool):
    # Decorated on first use, not at import: triton.jit reads TRITON_INTERPRET when it decorates.
    return triton.jit(_fwd), triton.jit(_bwd)


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _check_device(x: torch.Tensor) -> None:
    if x.device.type != "cuda" and not knobs.runtime.interpret:
        raise ValueError(
            f"logits_p: the triton backend needs CUDA tensors, got {x.device}; on CPU set "
            "TRITON_INTERPRET=1 (Triton's interpreter, slow) or use backend='chunked'"
        )


class TritonRowStats(torch.autograd.Function):
    """Row statistics by the online-softmax kernel; the backward is the fused gradient kernel."""

    @staticmethod
    def forward(ctx, logits_p, logits_q, tokens, block_v: int):
        _check_device(logits_p)
        N, V = logits_p.shape  # rows (unmasked positions), vocabulary
        dtype = accumulation_dtype(logits_p)
        # The kernels read rows by stride: only the last dimension must be contiguous.
        logits_p = logits_p if logits_p.stride(-1) == 1 else logits_p.contiguous()
        logits_q = logits_q if logits_q.stride(-1) == 1 else logits_q.contiguous()
        tokens = tokens.contiguous()
        out = logits_p.new_empty((5, N), dtype=dtype)  # logp_y, logq_y, kl, lse_p, lse_q
        if N:
            fwd, _ = _kernels(knobs.runtime.interpret)
            fwd[(N,)](
                logits_p, logits_q, tokens, out, N, V, logits_p.stride(0), logits_q.stride(0),
                BLOCK_V=block_v, ACC=_tl_dtype(dtype), FLOOR=_FLOOR,
            )  # fmt: skip
        ctx.save_for_backward(logits_p, logits_q, tokens, out)
        ctx.block_v = block_v
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx, g_lp, g_lq, g_kl):
        logits_p, logits_q, tokens, stats = ctx.saved_tensors
        need_p, need_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        N, V = logits_p.shape  # rows, vocabulary
        # Unused outputs arrive as None: a zero upstream gradient.
        g = torch.stack([stats.new_zeros(N) if x is None else x.to(stats.dtype) for x in (g_lp, g_lq, g_kl)])
        # Gradients are fresh contiguous [N, V] in the logits' dtypes (row stride V).
        dzp = logits_p.new_empty((N, V)) if need_p else None
        dzq = logits_q.new_empty((N, V)) if need_q else None
        if N and (need_p or need_q):
            _, bwd = _kernels(knobs.runtime.interpret)
            bwd[(N,)](
                logits_p, logits_q, tokens, stats, g.contiguous(),
                dzp if need_p else logits_p, dzq if need_q else logits_q,  # unused pointers when not needed
                N, V, logits_p.stride(0), logits_q.stride(0), V,
                BLOCK_V=ctx.block_v, ACC=_tl_dtype(stats.dtype), NEED_P=need_p, NEED_Q=need_q,
            )  # fmt: skip
        return dzp, dzq, None, None


def block_for(V: int, max_block: int = MAX_BLOCK_V) -> int:
    """Vocabulary block: the next power of two ≥ V, at most `max_block`."""
    return min(max_block, triton.next_power_of_2(max(V, 1)))


def triton_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor):
    """Backend function: (logp, logq, kl), each [N], from logits [N, V] and tokens [N].

    The block is capped by the module's MAX_BLOCK_V, read at each call (tests lower it to exercise
    the online rescaling across many blocks).
    """
    return TritonRowStats.apply(logits_p, logits_q, tokens, block_for(logits_p.shape[-1], MAX_BLOCK_V))
