"""Reference backend: plain torch over row chunks, differentiated by autograd.

Never builds a float32 temporary larger than one chunk of rows in the forward pass. Under autograd
the saved activations still add up to the full [N, V]; the `chunked` backend (analytic backward)
removes that.
"""

from __future__ import annotations

import torch

# Rows per chunk so that one float32 [rows, V] temporary stays near 64 MiB.
_CHUNK_ELEMENTS = 1 << 24


def accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (fp32, bf16, fp16) accumulates in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def row_stats(zp: torch.Tensor, zq: torch.Tensor, tok: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """logp, logq of the sampled token and KL(p‖q) for rows of logits already in the accumulation dtype."""
    log_p = torch.log_softmax(zp, dim=-1)  # [n, V]
    log_q = torch.log_softmax(zq, dim=-1)  # [n, V]
    p = log_p.exp()
    # Mask before multiplying: where p = 0 the term is 0 even if log q = −inf (no 0·∞ = NaN);
    # where p > 0 and q = 0 the term is +inf, as the KL is. The difference is masked too: with
    # log p = −inf it is −inf (or NaN), and the backward of p·diff would multiply it by 0 → NaN.
    support = p > 0
    zero = torch.zeros((), dtype=p.dtype, device=p.device)
    terms = torch.where(support, p * torch.where(support, log_p - log_q, zero), zero)
    kl = terms.sum(dim=-1)
    idx = tok.unsqueeze(-1)
    return log_p.gather(-1, idx).squeeze(-1), log_q.gather(-1, idx).squeeze(-1), kl


def torch_rows(logits_p: torch.Tensor, logits_q: torch.Tensor, tokens: torch.Tensor):
    N, V = logits_p.shape  # rows (unmasked positions), vocabulary
    dtype = accumulation_dtype(logits_p)
    rows = max(1, _CHUNK_ELEMENTS // max(V, 1))
    out = [[], [], []]
    for start in range(0, N, rows):
        sl = slice(start, start + rows)
        for acc, value in zip(out, row_stats(logits_p[sl].to(dtype), logits_q[sl].to(dtype), tokens[sl])):
            acc.append(value)
    if N == 0:
        empty = logits_p.new_zeros(0, dtype=dtype)
        return empty, empty.clone(), empty.clone()
    return tuple(torch.cat(acc) for acc in out)
