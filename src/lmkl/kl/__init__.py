"""KL estimators for language models: per-token statistics, value estimators, gradient surrogates.

    stats = token_stats(logits_p, logits_q, tokens, mask)   # KL(p‖q), y ~ p
    values = estimate(stats, "rb")                          # [B]; their mean is the estimate
    summ = summarize(values)                                # Estimate(mean, stderr, ci, n, frac_negative, interval)
    summ = summarize_estimator(stats, "rb_cv", interval="skew")  # jackknife stderr for cross-fitted values
    loss = kl_surrogate(logits_p, logits_q, tokens, mask, form="rb_causal")  # [B]

Pure tensor math (torch only): this package never imports transformers or any other lmkl layer.
"""

from lmkl.kl.backends.fused_linear import row_stats_from_hidden, token_stats_from_hidden
from lmkl.kl.crossfit import BOUNDS as CROSSFIT_BOUNDS
from lmkl.kl.crossfit import crossfit_coefficients
from lmkl.kl.estimators import CROSSFITTED, ESTIMATORS, UNBIASED, control_variate_pair, estimate
from lmkl.kl.stats import TokenStats, concat_stats
from lmkl.kl.summary import INTERVALS, Estimate, pool_over_prompts, summarize, summarize_estimator
from lmkl.kl.surrogates import (
    SURROGATE_FORMS,
    SURROGATES,
    UNBIASED_FORMS,
    kl_surrogate,
    surrogate_from_stats,
    surrogate_terms,
)
from lmkl.kl.token_stats import token_stats

__all__ = [
    "CROSSFITTED",
    "CROSSFIT_BOUNDS",
    "ESTIMATORS",
    "INTERVALS",
    "SURROGATES",
    "SURROGATE_FORMS",
    "UNBIASED",
    "UNBIASED_FORMS",
    "Estimate",
    "TokenStats",
    "concat_stats",
    "control_variate_pair",
    "crossfit_coefficients",
    "estimate",
    "kl_surrogate",
    "pool_over_prompts",
    "row_stats_from_hidden",
    "summarize",
    "summarize_estimator",
    "surrogate_from_stats",
    "surrogate_terms",
    "token_stats",
    "token_stats_from_hidden",
]
