"""Tractable language models with exact KL and exact gradients: the oracle for tests and `lmkl demo`.

    p, q = random_tabular_pair(seed=0)          # or counterexample(), or random_ngram_pair(seed=0)
    exact_kl(p, q)                              # float64 scalar, differentiable
    exact_kl_grad(p, q)                         # ∇_θp KL(p‖q), shaped like p.logits
    tok, mask = p.sample(64, generator)         # [n, T] strings with EOS, as lmkl.kl expects
    stats = token_stats(p.next_token_logits(tok), q.next_token_logits(tok), tok, mask)
    estimator_moments(p, q, "rb")               # exact mean and per-sample variance of an estimator

Torch only, float64. Imports `lmkl.kl` (to take the exact moments of its estimators), nothing higher.
"""

from lmkl.exact.local import local_kl
from lmkl.exact.ngram import NGramLM, ngram_kl
from lmkl.exact.oracle import (
    Moments,
    Support,
    crossfit_moments,
    estimator_moments,
    exact_kl,
    exact_kl_grad,
    expected_surrogate_grad,
    moments,
    oracle_control_variate,
    support,
    support_stats,
)
from lmkl.exact.tabular import TabularLM, num_prefixes
from lmkl.exact.toys import counterexample, random_ngram_pair, random_tabular_pair

__all__ = [
    "Moments",
    "NGramLM",
    "Support",
    "TabularLM",
    "counterexample",
    "crossfit_moments",
    "estimator_moments",
    "exact_kl",
    "exact_kl_grad",
    "expected_surrogate_grad",
    "local_kl",
    "moments",
    "ngram_kl",
    "num_prefixes",
    "oracle_control_variate",
    "random_ngram_pair",
    "random_tabular_pair",
    "support",
    "support_stats",
]
