"""Names you can find: one function per surrogate form (registry + docstring template), estimators that
refuse a misspelled option instead of ignoring it."""

from __future__ import annotations

import pytest
import torch

from lmkl.kl import (
    ESTIMATORS,
    SURROGATE_FORMS,
    SURROGATES,
    UNBIASED_FORMS,
    estimate,
    surrogate_terms,
    token_stats,
)


def _stats():
    g = torch.Generator().manual_seed(0)
    B, T, V = 4, 5, 7  # batch, positions, vocab
    logits_p, logits_q = torch.randn(B, T, V, generator=g), torch.randn(B, T, V, generator=g)
    tokens = torch.randint(0, V, (B, T), generator=g)
    return token_stats(logits_p, logits_q, tokens, torch.ones(B, T, dtype=torch.bool))


def test_every_form_is_a_named_function_with_the_docstring_template():
    assert list(SURROGATES) == list(SURROGATE_FORMS)
    for name, fn in SURROGATES.items():
        assert fn.__name__ == name
        doc = fn.__doc__ or ""
        assert ("Unbiased for ∇θ KL(p_θ‖q)" in doc) == (name in UNBIASED_FORMS), name  # what it is unbiased for
        assert all(part in doc for part in ("Args:", "[B, T]", "Returns:", "Ref:")), name  # shapes and source


def test_surrogate_terms_dispatch_through_the_registry():
    stats = _stats()
    for name, fn in SURROGATES.items():
        assert torch.equal(surrogate_terms(stats, name), fn(stats))
    with pytest.raises(ValueError, match="form"):
        surrogate_terms(stats, "rb")


def test_estimators_refuse_unknown_keywords_naming_the_allowed_ones():
    stats = _stats()
    with pytest.raises(TypeError, match=r"'fold'.*allowed: folds, groups"):
        estimate(stats, "rb_cv", fold=4)
    with pytest.raises(TypeError, match="'fold'"):
        estimate(stats, "rb", fold=4)
    with pytest.raises(TypeError):  # the functions themselves take only what they use
        ESTIMATORS["rb"](stats, folds=2)
    with pytest.raises(TypeError):
        ESTIMATORS["rb_cv"](stats, fold=2)
    # folds and groups are the cross-fitted estimators' options; the others ignore them
    assert torch.equal(estimate(stats, "rb", folds=2), estimate(stats, "rb"))
