"""Per-token statistics straight from hidden states and `lm_head` weights, never holding [N, V].

    z_p = h_p W_pᵀ,  z_q = h_q W_qᵀ   (one chunk of rows at a time, then the `chunked` chunk bodies)

The forward keeps per-row results only; the backward recomputes each chunk's logits, takes the
analytic logit gradients of `chunked` (dz, [rows, V]) and folds them into

    ∂/∂h = dz W,   ∂/∂W += dzᵀ h

so the largest temporaries are one [rows, V] chunk and the weight-shaped gradients. Logits are
computed in the inputs' dtype (as the model's lm_head would) and then accumulate in float32 (float64
for float64 inputs): the values equal `token_stats(h_p @ W_pᵀ, h_q @ W_qᵀ, ...)`.
"""

from __future__ import annotations

import torch

from lmkl.kl.backends.chunked import chunk_backward, chunk_forward, rows_per_chunk
from lmkl.kl.backends.torch_rows import accumulation_dtype
from lmkl.kl.stats import TokenStats, assemble
from lmkl.kl.validation import check_tokens_mask

# Rows per chunk so that one [rows, V] float32 logits chunk holds about 2^20 values (4 MiB): large
# enough for an efficient matmul, small next to [N, V].
CHUNK_ELEMENTS = 1 << 20


def _logits(h: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, temperature: float) -> torch.Tensor:
    """[n, V] logits h Wᵀ in the inputs' dtype, upcast to the accumulation dtype, then divided by τ
    (the order of `lmkl.models.next_token_logits`: raw logits → float32 → / τ)."""
    z = (h @ w.T).to(dtype)
    return z if temperature == 1.0 else z / temperature


class FusedLinearRowStats(torch.autograd.Function):
    """(logp, logq, kl, entropy) [N] from hidden rows h_p [N, H_p], h_q [N, H_q] and weights W_p [V, H_p],
    W_q [V, H_q]; entropy H(p) only `with_entropy` (else zeros), and never differentiated."""

    @staticmethod
    def forward(ctx, hidden_p, weight_p, hidden_q, weight_q, tokens, rows: int, temperature: float, with_entropy: bool = False):
        N = hidden_p.shape[0]  # rows (unmasked positions)
        dtype = accumulation_dtype(hidden_p)
        out = hidden_p.new_zeros((4, N), dtype=dtype)  # logp, logq, kl, entropy
        for start in range(0, N, rows):
            sl = slice(start, start + rows)
            values = chunk_forward(
                _logits(hidden_p[sl], weight_p, dtype, temperature),
                _logits(hidden_q[sl], weight_q, dtype, temperature),
                tokens[sl],
                entropy=with_entropy,
            )
            for i, v in enumerate(values):
                out[i, sl] = v
        ctx.save_for_backward(hidden_p, weight_p, hidden_q, weight_q, tokens, out[2])
        ctx.rows, ctx.temperature = rows, temperature
        ctx.mark_non_differentiable(out[3])
        return out[0], out[1], out[2], out[3]

    @staticmethod
    def backward(ctx, g_lp, g_lq, g_kl, _g_entropy):
        hidden_p, weight_p, hidden_q, weight_q, tokens, kl = ctx.saved_tensors
        need_hp, need_wp, need_hq, need_wq = ctx.needs_input_grad[:4]
        need_p, need_q = need_hp or need_wp, need_hq or need_wq
        N, dtype = hidden_p.shape[0], kl.dtype  # rows, accumulation dtype
        g_lp, g_lq, g_kl = (kl.new_zeros(N) if g is None else g.to(dtype) for g in (g_lp, g_lq, g_kl))
        # Weight gradients accumulate over chunks in the accumulation dtype, cast once at the end.
        d_hp = torch.empty_like(hidden_p) if need_hp else None
        d_hq = torch.empty_like(hidden_q) if need_hq else None
        d_wp = torch.zeros_like(weight_p, dtype=dtype) if need_wp else None
        d_wq = torch.zeros_like(weight_q, dtype=dtype) if need_wq else None
        tau = ctx.temperature
        # z = h Wᵀ / τ, so ∂/∂h = (dz/τ) W and ∂/∂W = (dz/τ)ᵀ h: the 1/τ folds into the weights once.
        w_p, w_q = (weight_p.to(dtype), weight_q.to(dtype)) if tau == 1.0 else (weight_p.to(dtype) / tau, weight_q.to(dtype) / tau)
        for start in range(0, N, ctx.rows):
            sl = slice(start, start + ctx.rows)
            hp, hq = hidden_p[sl], hidden_q[sl]
            dzp, dzq = chunk_backward(
                _logits(hp, weight_p, dtype, tau), _logits(hq, weight_q, dtype, tau), tokens[sl],
                kl[sl], g_lp[sl], g_lq[sl], g_kl[sl], need_p, need_q,
            )  # fmt: skip
            if need_hp:
                d_hp[sl] = dzp @ w_p
            if need_wp:
                d_wp.addmm_(dzp.T, hp.to(dtype), alpha=1 / tau)
            if need_hq:
                d_hq[sl] = dzq @ w_q
            if need_wq:
                d_wq.addmm_(dzq.T, hq.to(dtype), alpha=1 / tau)
        cast = lambda d, like: None if d is None else d.to(like.dtype)  # noqa: E731
        return (
            cast(d_hp, hidden_p),
            cast(d_wp, weight_p),
            cast(d_hq, hidden_q),
            cast(d_wq, weight_q),
            None,
            None,
            None,
            None,
        )


def row_stats_from_hidden(
    hidden_p: torch.Tensor,
    weight_p: torch.Tensor,
    hidden_q: torch.Tensor,
    weight_q: torch.Tensor,
    tokens: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row statistics of the logits h Wᵀ / τ, for rows already selected (no mask, no checks of a
    [B, T] layout): hidden_p [N, H_p], hidden_q [N, H_q], weights [V, H], tokens [N] →
    (logp, logq, kl, entropy), each [N] in the accumulation dtype; entropy = H(p) per row, not
    differentiable; the others differentiable with respect to all four tensors, as in
    `token_stats_from_hidden` (the same chunks, the same memory bound). For trainers that score their
    own rows (lmkl.integrations.trl: TRL's log-probabilities and entropies and the KL in one pass).
    ValueError on mismatched shapes, or NaN statistics (NaN in a hidden state or weight) naming the row."""
    if hidden_p.dim() != 2 or hidden_q.dim() != 2 or hidden_p.shape[0] != hidden_q.shape[0] or tokens.shape != hidden_p.shape[:1]:
        raise ValueError(
            f"hidden_p/hidden_q/tokens: expected [N, H_p], [N, H_q], [N], got {tuple(hidden_p.shape)}, "
            f"{tuple(hidden_q.shape)}, {tuple(tokens.shape)}"
        )
    if weight_p.shape[0] != weight_q.shape[0] or weight_p.shape[-1] != hidden_p.shape[-1] or weight_q.shape[-1] != hidden_q.shape[-1]:
        raise ValueError(f"weight_p/weight_q: expected [V, H_p], [V, H_q], got {tuple(weight_p.shape)}, {tuple(weight_q.shape)}")
    V = weight_p.shape[0]
    out = FusedLinearRowStats.apply(
        hidden_p, weight_p, hidden_q, weight_q, tokens.long(), rows_per_chunk(V, CHUNK_ELEMENTS), float(temperature), True
    )
    for values, which in zip(out[:3], ("hidden_p/weight_p", "hidden_q/weight_q", "hidden/weight")):
        bad = torch.isnan(values)
        if bool(bad.any()):
            raise ValueError(f"{which}: NaN logits (or every logit −inf) at row {int(bad.nonzero()[0, 0])} of {values.shape[0]}")
    return out


def token_stats_from_hidden(
    hidden_p: torch.Tensor,
    weight_p: torch.Tensor,
    hidden_q: torch.Tensor,
    weight_q: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    vocab_size: int | None = None,
) -> TokenStats:  # KL(p ‖ q), y ~ p
    """`token_stats` for logits h Wᵀ / τ of two models' lm_heads, without materializing [B, T, V].

    Args:
      hidden_p: [B, T, H_p] final hidden states of p (the sampling model); weight_p: [V_p, H_p] its lm_head.
      hidden_q: [B, T, H_q] final hidden states of q; weight_q: [V_q, H_q] its lm_head (H_q may differ).
      tokens: [B, T] sampled tokens; mask: [B, T] bool, True at real positions.
      temperature: τ > 0 of both models: logits are (h Wᵀ) upcast, then / τ.
      vocab_size: the tokenizer's vocabulary V; lm_head rows ≥ V (embedding padding) are dropped, as
        `lmkl.models.score_rollout` drops those columns. None: V_p = V_q rows, all real.
    Returns:
      TokenStats (logp, logq, kl [B, T], zero where masked), equal to the scoring path
      `token_stats(next_token_logits(h_p W_pᵀ, temperature=τ, vocab_size=V)[..., :V], ...)` and
      differentiable with respect to all four tensors. Peak extra memory: one [rows, V] chunk plus
      the weight gradients.
    Raises:
      ValueError naming the argument on a shape, dtype, option or token-range mismatch, or NaN at a
      real position.
    """
    for name, h, w in (("p", hidden_p, weight_p), ("q", hidden_q, weight_q)):
        if h.dim() != 3 or w.dim() != 2 or h.shape[-1] != w.shape[-1]:
            raise ValueError(
                f"hidden_{name}/weight_{name}: expected [B, T, H] and [V, H], got "
                f"{tuple(h.shape)} and {tuple(w.shape)}"
            )
        if not (h.is_floating_point() and w.is_floating_point()):
            raise ValueError(
                f"hidden_{name}/weight_{name}: expected floating dtypes, got {h.dtype}, {w.dtype}"
            )
    if hidden_p.shape[:2] != hidden_q.shape[:2]:
        raise ValueError(
            f"hidden_q: expected [B, T] = {tuple(hidden_p.shape[:2])}, got {tuple(hidden_q.shape[:2])}"
        )
    if isinstance(temperature, bool) or not (isinstance(temperature, int | float) and 0 < temperature < float("inf")):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    if vocab_size is not None:
        if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or vocab_size < 1:
            raise ValueError(f"vocab_size: expected an integer ≥ 1 or None, got {vocab_size!r}")
        for name, w in (("weight_p", weight_p), ("weight_q", weight_q)):
            if w.shape[0] < vocab_size:
                raise ValueError(f"{name}: {w.shape[0]} rows, fewer than vocab_size {vocab_size}")
        weight_p, weight_q = weight_p[: int(vocab_size)], weight_q[: int(vocab_size)]  # views: padding rows dropped
    if weight_p.shape[0] != weight_q.shape[0]:
        raise ValueError(
            f"weight_q: vocabulary size {weight_q.shape[0]} does not match weight_p's {weight_p.shape[0]} "
            "(pass vocab_size= when an lm_head has padding rows)"
        )
    B, T, _ = hidden_p.shape  # batch, positions, hidden
    V = weight_p.shape[0]  # vocabulary
    check_tokens_mask(tokens, mask, B, T, V)
    logp_n, logq_n, kl_n, _ = FusedLinearRowStats.apply(
        hidden_p[mask],
        weight_p,
        hidden_q[mask],
        weight_q,
        tokens[mask].long(),
        rows_per_chunk(V, CHUNK_ELEMENTS),
        float(temperature),
    )  # each [N]
    return assemble(logp_n, logq_n, kl_n, mask, ("hidden_p/weight_p", "hidden_q/weight_q", "hidden/weight"))
