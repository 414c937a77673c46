"""A tabular autoregressive LM with a length cap: every string can be enumerated, so KL is exact.

The vocabulary has V symbols, one of which is EOS; the other V − 1 are the "letters". A prefix is a
string of at most L letters; the model stores one row of next-token logits per prefix,

    logits: [P, V] float64, P = Σ_{k=0..L} (V − 1)^k   (the parameters; may require grad),

and EOS is forced after L letters (the other logits of a length-L prefix are replaced by −inf, so
their entries never receive gradient). A string y of k ≤ L letters is emitted with
p(y) = Π_{t<k} p(y_t | y_<t) · p(EOS | y), so strings and prefixes are in one-to-one correspondence.

Token layout (the one `lmkl.kl.token_stats` takes): tokens [n, L + 1] with EOS at the last real
position k, padded with EOS after it; mask [n, L + 1] bool, True at positions 0..k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TabularLM:
    """Autoregressive LM over strings of at most `max_len` letters, one logit row per prefix.

    Prefix ids: the prefixes of length k occupy ids offset(k) .. offset(k) + (V−1)^k − 1, in base-(V−1)
    order of their letters (letter index = token id, minus one for ids above EOS).
    """

    logits: torch.Tensor  # [P, V] per-prefix next-token logits (float64)
    eos: int
    max_len: int

    def __post_init__(self) -> None:
        if not isinstance(self.logits, torch.Tensor) or self.logits.dim() != 2:
            raise ValueError(f"logits: expected a [P, V] tensor, got {getattr(self.logits, 'shape', self.logits)}")
        if self.logits.dtype != torch.float64:
            raise ValueError(f"logits: expected float64 (the exact oracle), got {self.logits.dtype}")
        V = self.logits.shape[1]
        if V < 2:
            raise ValueError(f"logits: need at least one letter besides EOS, got vocabulary size {V}")
        if not 0 <= self.eos < V:
            raise ValueError(f"eos: expected an id in [0, {V}), got {self.eos}")
        if self.max_len < 0:
            raise ValueError(f"max_len: expected ≥ 0, got {self.max_len}")
        if self.logits.shape[0] != num_prefixes(V - 1, self.max_len):
            raise ValueError(
                f"logits: expected {num_prefixes(V - 1, self.max_len)} rows (prefixes of ≤ {self.max_len} "
                f"letters over {V - 1}), got {self.logits.shape[0]}"
            )

    # ---------------------------------------------------------------- structure
    @property
    def vocab_size(self) -> int:
        return self.logits.shape[1]

    @property
    def num_letters(self) -> int:
        return self.vocab_size - 1

    @property
    def seq_len(self) -> int:
        """T = L + 1 positions: up to L letters, then EOS."""
        return self.max_len + 1

    def with_logits(self, logits: torch.Tensor) -> TabularLM:
        """The same structure with other parameters (e.g. a leaf that requires grad)."""
        return TabularLM(logits, self.eos, self.max_len)

    def prefix_logits(self) -> torch.Tensor:
        """[P, V] logits with EOS forced at length L (non-EOS entries −inf there)."""
        P, V = self.logits.shape  # prefixes, vocabulary
        first_full = num_prefixes(self.num_letters, self.max_len - 1) if self.max_len > 0 else 0
        forced = torch.zeros(P, V, dtype=torch.bool, device=self.logits.device)
        forced[first_full:] = True
        forced[:, self.eos] = False
        return self.logits.masked_fill(forced, float("-inf"))

    def prefix_log_probs(self) -> torch.Tensor:
        """[P, V] log p(a | prefix)."""
        return torch.log_softmax(self.prefix_logits(), dim=-1)

    # ---------------------------------------------------------------- per-position logits
    def prefix_ids(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n, T] id of the prefix y_<t at each position t (0, the empty prefix, after EOS)."""
        n, T = tokens.shape  # strings, positions
        if T != self.seq_len:
            raise ValueError(f"tokens: expected {self.seq_len} positions (max_len + 1), got {T}")
        m = self.num_letters
        letters = tokens - (tokens > self.eos).long()  # letter index of each non-EOS token
        ids = torch.zeros(n, T, dtype=torch.long, device=tokens.device)
        alive = torch.ones(n, dtype=torch.bool, device=tokens.device)  # no EOS seen before t
        code = torch.zeros(n, dtype=torch.long, device=tokens.device)  # base-m code of y_<t
        for t in range(T):
            ids[:, t] = torch.where(alive, num_prefixes(m, t - 1) + code, torch.zeros_like(code))
            if t + 1 < T:
                alive = alive & (tokens[:, t] != self.eos)
                code = torch.where(alive, code * m + letters[:, t], code)
        return ids

    def next_token_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """[n, T, V] logits of p(· | y_<t) at every position (junk but finite rows after EOS).

        Carries the graph of `logits`, so `token_stats(p.next_token_logits(tok), ...)` differentiates
        with respect to p's parameters.
        """
        return self.prefix_logits()[self.prefix_ids(tokens)]

    def log_prob(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[n] log p(y) = Σ_t mask · log p(y_t | y_<t)."""
        logp = torch.log_softmax(self.next_token_logits(tokens), dim=-1)
        picked = logp.gather(-1, tokens.clamp(0, self.vocab_size - 1).unsqueeze(-1)).squeeze(-1)
        return torch.where(mask, picked, torch.zeros((), dtype=picked.dtype)).sum(-1)

    # ---------------------------------------------------------------- enumeration and sampling
    def all_strings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every string of ≤ L letters: tokens [P, T], mask [P, T], ordered like the prefix ids."""
        m, T = self.num_letters, self.seq_len
        letter_ids = [a for a in range(self.vocab_size) if a != self.eos]
        rows = []
        for k in range(self.max_len + 1):
            codes = torch.arange(m**k)
            digits = torch.stack([(codes // m ** (k - 1 - i)) % m for i in range(k)], dim=-1) if k else None
            tok = torch.full((m**k, T), self.eos, dtype=torch.long)
            if k:
                tok[:, :k] = torch.tensor(letter_ids)[digits]
            rows.append(tok)
        tokens = torch.cat(rows)
        lengths = (tokens != self.eos).sum(-1)  # letters before EOS
        mask = torch.arange(T).unsqueeze(0) <= lengths.unsqueeze(1)
        return tokens, mask

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n i.i.d. strings y ~ p: tokens [n, T] (EOS at the last real position, EOS-padded), mask [n, T]."""
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
        T = self.seq_len
        probs = self.prefix_log_probs().detach().exp()  # [P, V]
        tokens = torch.full((n, T), self.eos, dtype=torch.long)
        mask = torch.zeros(n, T, dtype=torch.bool)
        alive = torch.ones(n, dtype=torch.bool)
        for t in range(T):
            ids = self.prefix_ids(tokens)[:, t]  # prefix y_<t (only read where alive)
            draw = categorical(probs[ids], generator)
            tokens[:, t] = torch.where(alive, draw, tokens[:, t])
            mask[:, t] = alive
            alive = alive & (draw != self.eos)
        return tokens, mask


def categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of probs [n, V] by inversion (one uniform per row; much faster than
    torch.multinomial for many short rows). A zero-probability entry is never drawn."""
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[:, -1:]  # exact 1 at the end, so u < 1 always lands inside
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


def num_prefixes(num_letters: int, max_len: int) -> int:
    """Σ_{k=0..max_len} m^k, the number of strings of at most max_len letters (0 for max_len < 0)."""
    return sum(num_letters**k for k in range(max_len + 1))
