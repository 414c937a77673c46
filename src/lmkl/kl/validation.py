"""Input checks shared by the `lmkl.kl` entry points.

Every failure is a `ValueError` that names the argument, what was expected and what came, so that a
caller several layers up (a stage, the CLI) can show it as is.
"""

from __future__ import annotations

import torch


def check_logits_pair(logits_p: torch.Tensor, logits_q: torch.Tensor) -> tuple[int, int, int]:
    """Return (B, T, V) after checking that both logits are floating [B, T, V] of the same shape."""
    for name, x in (("logits_p", logits_p), ("logits_q", logits_q)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(f"{name}: expected shape [B, T, V], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: expected a floating dtype, got {x.dtype}")
    if logits_p.shape[-1] != logits_q.shape[-1]:
        raise ValueError(
            f"logits_q: vocabulary size {logits_q.shape[-1]} does not match logits_p's "
            f"{logits_p.shape[-1]}; KL(p‖q) needs both models over the same vocabulary"
        )
    if logits_p.shape != logits_q.shape:
        raise ValueError(
            f"logits_q: expected the shape of logits_p {tuple(logits_p.shape)}, got {tuple(logits_q.shape)}"
        )
    if logits_p.device != logits_q.device:
        raise ValueError(f"logits_q: on {logits_q.device}, expected logits_p's device {logits_p.device}")
    B, T, V = logits_p.shape  # batch, positions, vocabulary
    return B, T, V


def check_tokens_mask(tokens: torch.Tensor, mask: torch.Tensor, B: int, T: int, V: int) -> None:
    """Check tokens [B, T] integer ids in [0, V) at unmasked positions, and mask [B, T] bool."""
    if not isinstance(tokens, torch.Tensor) or tokens.shape != (B, T):
        got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens: expected shape {(B, T)} to match the logits, got {got}")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool or tokens.is_complex():
        raise ValueError(f"tokens: expected an integer dtype, got {tokens.dtype}")
    if not isinstance(mask, torch.Tensor) or mask.shape != (B, T):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask: expected shape {(B, T)} to match the logits, got {got}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask: expected dtype torch.bool (True = a real position), got {mask.dtype}")
    valid = tokens[mask]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= V):
        bad = valid[(valid < 0) | (valid >= V)][0].item()
        raise ValueError(f"tokens: expected ids in [0, {V}) at unmasked positions, got {bad}")


def check_no_nan(values: torch.Tensor, which: str, rows: torch.Tensor) -> None:
    """Raise if a per-row statistic is NaN: NaN logits, or a row whose logits are all −inf.

    `values` is [N] for the N unmasked rows; `rows` [N, 2] holds their (batch, position) indices.
    """
    bad = torch.isnan(values)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        b, t = (int(v) for v in rows[i])
        raise ValueError(
            f"{which}: NaN logits (or every logit −inf) at batch {b}, position {t}, an unmasked position"
        )
