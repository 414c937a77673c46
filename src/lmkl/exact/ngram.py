"""An n-gram LM with EOS and unbounded length; its KL is the solution of a linear system.

State = the last k symbols (k = `context` ≥ 1), left-padded with a BOS symbol that is never emitted.
Symbols of a state are token ids in [0, V) with BOS written as the EOS id (EOS itself never enters a
state, since it ends the string), so there are S = V^k states, indexed in base V, most recent last.

    logits: [S, V] float64 next-token logits per state (the parameters; may require grad).

From state s, a letter a ≠ EOS moves to s' = (s[1:], a); EOS ends the string. With the sub-stochastic
matrix P[s, s'] = Σ_{a: s→s'} p(a|s) and the start vector e (all-BOS state), the expected number of
visits to each state is v = (I − Pᵀ)⁻¹ e, finite when every reachable state has p(EOS|s) > 0. Then
the chain rule KL(p‖q) = E[Σ_t D(h_t)] = Σ_s v_s D(s) with D(s) = KL(p(·|s) ‖ q(·|s)).
Ref: paper-digest §3.1 (chain rule), §7 (f) (linear systems for finite-state LMs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmkl.exact.local import local_kl
from lmkl.exact.tabular import categorical


@dataclass(frozen=True)
class NGramLM:
    """n-gram LM over V symbols (one of them EOS) with a context of `context` symbols."""

    logits: torch.Tensor  # [V^context, V] float64
    eos: int
    context: int

    def __post_init__(self) -> None:
        if not isinstance(self.logits, torch.Tensor) or self.logits.dim() != 2:
            raise ValueError(f"logits: expected a [S, V] tensor, got {getattr(self.logits, 'shape', self.logits)}")
        if self.logits.dtype != torch.float64:
            raise ValueError(f"logits: expected float64 (the exact oracle), got {self.logits.dtype}")
        if self.context < 1:
            raise ValueError(f"context: expected ≥ 1 symbol of context, got {self.context}")
        V = self.logits.shape[1]
        if not 0 <= self.eos < V:
            raise ValueError(f"eos: expected an id in [0, {V}), got {self.eos}")
        if self.logits.shape[0] != V**self.context:
            raise ValueError(f"logits: expected {V}^{self.context} = {V**self.context} rows, got {self.logits.shape[0]}")

    @property
    def vocab_size(self) -> int:
        return self.logits.shape[1]

    @property
    def num_states(self) -> int:
        return self.logits.shape[0]

    @property
    def start_state(self) -> int:
        """All-BOS context (BOS is written as the EOS id)."""
        return sum(self.eos * self.vocab_size**i for i in range(self.context))

    def with_logits(self, logits: torch.Tensor) -> NGramLM:
        return NGramLM(logits, self.eos, self.context)

    def next_state(self, state: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Drop the oldest symbol, append `token` (only meaningful for token ≠ EOS)."""
        return (state % self.vocab_size ** (self.context - 1)) * self.vocab_size + token

    def transition_matrix(self) -> torch.Tensor:
        """[S, S] sub-stochastic P[s, s'] = p(letter leading s → s'); the missing mass is p(EOS|s)."""
        S, V = self.logits.shape  # states, vocabulary
        probs = torch.softmax(self.logits, dim=-1)
        states = torch.arange(S).unsqueeze(1).expand(S, V)
        targets = self.next_state(states, torch.arange(V).unsqueeze(0).expand(S, V))
        letter = torch.arange(V) != self.eos
        P = torch.zeros(S, S, dtype=probs.dtype)
        # index_put with accumulate: distinct letters always lead to distinct states, but keep it general.
        return P.index_put((states[:, letter].reshape(-1), targets[:, letter].reshape(-1)),
                           probs[:, letter].reshape(-1), accumulate=True)

    def expected_visits(self) -> torch.Tensor:
        """[S] v = (I − Pᵀ)⁻¹ e: expected number of positions at which the string is in each state."""
        S = self.num_states
        start = torch.zeros(S, dtype=self.logits.dtype)
        start[self.start_state] = 1.0
        A = torch.eye(S, dtype=self.logits.dtype) - self.transition_matrix().T
        return torch.linalg.solve(A, start)

    def expected_length(self) -> torch.Tensor:
        """E[|y| + 1], the expected number of positions (EOS included) = Σ_s v_s."""
        return self.expected_visits().sum()

    # ---------------------------------------------------------------- sampled strings
    def state_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n, T] state before each position (the start state again after EOS: junk, masked)."""
        n, T = tokens.shape  # strings, positions
        ids = torch.empty(n, T, dtype=torch.long)
        state = torch.full((n,), self.start_state, dtype=torch.long)
        alive = torch.ones(n, dtype=torch.bool)
        for t in range(T):
            ids[:, t] = torch.where(alive, state, torch.full_like(state, self.start_state))
            alive = alive & (tokens[:, t] != self.eos)
            state = torch.where(alive, self.next_state(state, tokens[:, t].clamp(0, self.vocab_size - 1)), state)
        return ids

    def next_token_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n, T, V] logits of p(· | y_<t) at every position, with the graph of `logits`."""
        return self.logits[self.state_ids(tokens)]

    def sample(
        self, n: int, generator: torch.Generator, max_positions: int = 10_000
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n strings y ~ p, each until its EOS: tokens [n, T] (EOS-padded), mask [n, T], T = longest.

        Raises RuntimeError if a string has not ended after `max_positions` positions (a safety cap:
        the model's expected length is finite, but a near-zero EOS probability would run for ages).
        """
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
        probs = torch.softmax(self.logits.detach(), dim=-1)
        state = torch.full((n,), self.start_state, dtype=torch.long)
        alive = torch.ones(n, dtype=torch.bool)
        cols, masks = [], []
        while bool(alive.any()):
            if len(cols) >= max_positions:
                raise RuntimeError(
                    f"max_positions: {int(alive.sum())} of {n} strings had no EOS after {max_positions} positions"
                )
            draw = categorical(probs[state], generator)
            draw = torch.where(alive, draw, torch.full_like(draw, self.eos))
            cols.append(draw)
            masks.append(alive)
            alive = alive & (draw != self.eos)
            state = torch.where(alive, self.next_state(state, draw), state)
        return torch.stack(cols, dim=1), torch.stack(masks, dim=1)


def ngram_kl(p: NGramLM, q: NGramLM) -> torch.Tensor:
    """Exact KL(p‖q) = Σ_s v_s D(s), a float64 scalar differentiable w.r.t. both models' logits.

    Unbounded length; needs p tight (p(EOS|s) > 0 on reachable states) for v to be finite.
    """
    if (p.vocab_size, p.eos, p.context) != (q.vocab_size, q.eos, q.context):
        raise ValueError(
            f"q: expected the structure of p (vocab {p.vocab_size}, eos {p.eos}, context {p.context}), "
            f"got (vocab {q.vocab_size}, eos {q.eos}, context {q.context})"
        )
    v = p.expected_visits()  # [S]
    D = local_kl(p.logits, q.logits)  # [S]
    # Unreachable states have v = 0 exactly; mask so that an infinite D there cannot make 0·∞.
    return torch.where(v > 0, v * D, torch.zeros_like(D)).sum()
