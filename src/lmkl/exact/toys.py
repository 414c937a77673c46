"""Constructors of model pairs (p, q) with known structure: seeded random toys and the counterexample."""

from __future__ import annotations

import math

import torch

from lmkl.exact.ngram import NGramLM
from lmkl.exact.tabular import TabularLM, num_prefixes


def _normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def random_tabular_pair(
    seed: int, *, vocab_size: int = 3, max_len: int = 3, scale: float = 1.0, perturbation: float = 0.5
) -> tuple[TabularLM, TabularLM]:
    """p with N(0, scale²) logits per prefix; q = p + N(0, perturbation²) in log space (EOS = last id).

    Default: 2 letters + EOS, at most 3 letters, so 15 strings (enumerable; 3375 ordered triples).
    """
    g = torch.Generator().manual_seed(seed)
    shape = (num_prefixes(vocab_size - 1, max_len), vocab_size)
    p_logits = scale * _normal(shape, g)
    q_logits = p_logits + perturbation * _normal(shape, g)
    eos = vocab_size - 1
    return TabularLM(p_logits, eos, max_len), TabularLM(q_logits, eos, max_len)


def random_ngram_pair(
    seed: int,
    *,
    vocab_size: int = 3,
    context: int = 1,
    scale: float = 1.0,
    perturbation: float = 0.5,
    eos_bias: float = 0.5,
) -> tuple[NGramLM, NGramLM]:
    """n-gram p with N(0, scale²) logits (+ eos_bias on EOS, to set the expected length) and
    q = p + N(0, perturbation²) in log space. EOS = last id."""
    g = torch.Generator().manual_seed(seed)
    eos = vocab_size - 1
    shape = (vocab_size**context, vocab_size)
    p_logits = scale * _normal(shape, g)
    p_logits[:, eos] += eos_bias
    q_logits = p_logits + perturbation * _normal(shape, g)
    return NGramLM(p_logits, eos, context), NGramLM(q_logits, eos, context)


def counterexample() -> tuple[TabularLM, TabularLM]:
    """The two-step pair where Var(rb) > Var(mc) (paper-digest §3.2, Appendix A.2).

    Letters {0, 1}, EOS = 2, EOS forced after exactly two letters (EOS has probability 0 before).
      step 1:           p = (.5, .5),   q = (.25, .75)
      step 2 after 0:   p = q = (.5, .5)
      step 2 after 1:   p = (.01, .99), q = (.99, .01)
    Exact: KL = 2.3954, Var(mc) = 3.316, Var(rb) = 5.070, Var(k3) = 100.9, Var(rb + λ*(mc − rb)) = 2.945.
    """
    ninf = float("-inf")

    def rows(*dists: tuple[float, float]) -> torch.Tensor:
        table = torch.zeros(num_prefixes(2, 2), 3, dtype=torch.float64)  # forced rows: any finite logits
        for i, (a, b) in enumerate(dists):
            table[i] = torch.tensor([math.log(a), math.log(b), ninf])
        return table

    # prefix ids: 0 = (), 1 = (0), 2 = (1), 3..6 = two letters (EOS forced)
    p = rows((0.5, 0.5), (0.5, 0.5), (0.01, 0.99))
    q = rows((0.25, 0.75), (0.5, 0.5), (0.99, 0.01))
    return TabularLM(p, eos=2, max_len=2), TabularLM(q, eos=2, max_len=2)
