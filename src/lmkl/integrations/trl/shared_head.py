"""One pass over the policy's lm_head for TRL's loss and lmkl's KL term together.

TRL (1.16) scores the policy in its loss forward with a fused head: the patched model forward
(`trl.trainer.utils.add_fused_lm_head`) runs the backbone, then calls

    trl.trainer.utils._ChunkedLogProbFunction.apply(hidden rows, W, bias, labels, τ, tile, softcap, scale, outputs)
        -> (log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1)   per row, None where not asked

For the duration of one loss forward, `SharedPolicyHead` stands in for that function: from the same
hidden rows it computes TRL's log-probabilities and entropies *and* the KL statistics against the
reference (whose final hidden states were kept from the rollout) with `lmkl.kl.row_stats_from_hidden`,
so the policy's head runs once for both instead of once in TRL's kernel and once more for the KL —
four lm_head-sized products fewer per step (benchmarks/README.md, trl_kl_overhead). TRL's loss
differentiates the log-probabilities through the same function, whose analytic backward carries both
TRL's gradient and the KL term's; TRL's values agree with its own kernel's to float rounding.

Rows: on CPU TRL passes every position of the micro-batch ([b · (P + T − 1), H], labels clamped to 0
outside the completion); on Triton devices only the completion's valid positions ([m, H], "compact").
The completion rows are picked out of either layout from the batch's completion mask, in the order
of `completion_mask[mask]`, and checked against the completion tokens.
"""

from __future__ import annotations

import contextlib

import torch

from lmkl.kl import TokenStats, row_stats_from_hidden

_SUPPORTED_OUTPUTS = {"log_probs", "entropy"}


class SharedPolicyHead:
    """Stands in for TRL's `_ChunkedLogProbFunction` during one loss forward (see the module doc)."""

    def __init__(self, hidden_q: torch.Tensor, weight_q: torch.Tensor, completion_ids: torch.Tensor,
                 completion_mask: torch.Tensor, prompt_width: int):  # fmt: skip
        self.hidden_q, self.weight_q = hidden_q, weight_q  # [B, T, H_q], [V, H_q] (no grad)
        self.completion_ids, self.mask = completion_ids, completion_mask.bool()  # [B, T]
        self.prompt_width = prompt_width  # P: columns of the (padded) prompt
        self.micro_batch = completion_ids.shape[0]  # sequences per TRL forward (set per scoring call)
        self.next_sequence = 0
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (logp, logq, kl) rows

    def apply(self, hidden, weight, bias, labels, temperature, _tile, softcap, logit_scale, outputs):
        if bias is not None or softcap is not None or float(logit_scale) != 1.0:
            raise ValueError("the lmkl KL term needs a bias-free lm_head without logit scaling or soft-capping")
        if not set(outputs) <= _SUPPORTED_OUTPUTS:
            raise ValueError(f"TRL asked its fused head for {sorted(outputs)}; lmkl's shared head gives {sorted(_SUPPORTED_OUTPUTS)}")
        B, T = self.mask.shape
        start = self.next_sequence
        b = min(self.micro_batch, B - start)  # sequences in this forward
        mask = self.mask[start : start + b]  # [b, T]
        rows = self._rows(hidden.shape[0], mask, b, T)  # [m] rows of `hidden` holding completion tokens
        tokens = labels[rows]
        if not torch.equal(tokens, self.completion_ids[start : start + b][mask]):
            raise RuntimeError("TRL's scored rows do not line up with the completion tokens (unexpected TRL version?)")
        hidden_q = self.hidden_q[start : start + b][mask]  # [m, H_q]
        dtype = torch.promote_types(hidden.dtype, weight.dtype)  # autocast may return fp32 states for bf16 weights
        logp, logq, kl, entropy = row_stats_from_hidden(
            hidden[rows].to(dtype), weight.to(dtype), hidden_q.to(dtype), self.weight_q.to(dtype), tokens,
            temperature=float(temperature),
        )  # fmt: skip
        self.parts.append((logp, logq, kl))
        self.next_sequence = start + b
        n = hidden.shape[0]
        log_probs = logp.new_zeros(n).index_put((rows,), logp)  # differentiable in logp
        ent = entropy.new_zeros(n).index_put((rows,), entropy) if "entropy" in outputs else None
        return log_probs, ent, None, None, None

    def _rows(self, n: int, mask: torch.Tensor, b: int, T: int) -> torch.Tensor:
        width = self.prompt_width + T - 1  # columns of TRL's shifted hidden states
        if n == b * width:  # every position: completion token t of sequence i is column P − 1 + t
            i, t = mask.nonzero(as_tuple=True)
            return i * width + self.prompt_width - 1 + t
        if n == int(mask.sum()):  # compact: only the valid completion positions, in mask order
            return torch.arange(n, device=mask.device)
        raise RuntimeError(f"TRL scored {n} rows for {b} sequences of {self.prompt_width} + {T} tokens (unexpected TRL version?)")

    def stats(self) -> TokenStats:
        """TokenStats [B, T] of the whole batch (zero where masked), in the policy's graph."""
        B, T = self.mask.shape
        if self.next_sequence != B:
            raise RuntimeError(f"the policy's head scored {self.next_sequence} of {B} sequences in the loss forward")
        fields = [torch.cat(column) for column in zip(*self.parts)]
        logp, logq, kl = (x.new_zeros(B, T).masked_scatter(self.mask, x) for x in fields)
        return TokenStats(logp, logq, kl, self.mask)


@contextlib.contextmanager
def shared_policy_head(head: SharedPolicyHead):
    """TRL's fused-head function replaced by `head` inside the block (the policy's loss forward)."""
    import trl.trainer.utils as trl_utils

    real = trl_utils._ChunkedLogProbFunction
    trl_utils._ChunkedLogProbFunction = head
    try:
        yield head
    finally:
        trl_utils._ChunkedLogProbFunction = real
