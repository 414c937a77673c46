"""The n-gram oracle: linear-system KL against a truncated enumeration, its gradient, sampling."""

from __future__ import annotations

import pytest
import torch

from lmkl.exact import NGramLM, exact_kl, exact_kl_grad, local_kl, random_ngram_pair
from lmkl.kl import estimate, summarize, token_stats


def _prefix_kl_truncated(p: NGramLM, q: NGramLM, N: int) -> tuple[float, float]:
    """Σ_{|h| ≤ N} p⃗(h) D(h) by enumerating every prefix of ≤ N letters, and the mass reaching N + 1.

    Independent of the linear system: prefixes are explicit token strings whose next-token logits
    come from `next_token_logits`, and p⃗ is the product of the letters' probabilities.
    """
    letters = torch.tensor([a for a in range(p.vocab_size) if a != p.eos])
    prefixes = torch.zeros(1, 0, dtype=torch.long)  # [count, length]
    reach = torch.ones(1, dtype=torch.float64)  # p⃗(h)
    total = 0.0
    for _ in range(N + 1):
        probe = torch.cat([prefixes, torch.full((len(prefixes), 1), p.eos)], 1)  # position after h
        zp, zq = p.next_token_logits(probe)[:, -1], q.next_token_logits(probe)[:, -1]
        total += float((reach * local_kl(zp, zq)).sum())
        reach = (reach[:, None] * torch.softmax(zp, -1)[:, letters]).reshape(-1)  # children h·a
        prefixes = torch.cat(
            [prefixes.repeat_interleave(len(letters), 0), letters.repeat(len(prefixes))[:, None]], 1
        )
    return total, float(reach.sum())


def test_linear_system_kl_matches_truncated_enumeration():
    """KL = Σ_{|h| ≤ N} p⃗(h) D(h) + tail with tail ∈ [0, m · max_s D(s) / min_s p(EOS|s)]: m is the
    mass of the prefixes of length N + 1, and from any of them the expected number of further
    positions is at most 1 / min_s p(EOS|s) (a geometric bound)."""
    p, q = random_ngram_pair(0, context=2, eos_bias=1.0)
    N = 14  # 2^14 prefixes at the last level
    head, m = _prefix_kl_truncated(p, q, N)
    eos_min = float(torch.softmax(p.logits, -1)[:, p.eos].min())
    bound = m * float(local_kl(p.logits, q.logits).max()) / eos_min
    kl = float(exact_kl(p, q))
    assert 0 < bound < 1e-4  # the truncation is tight enough for the comparison to mean something
    assert -1e-12 <= kl - head <= bound + 1e-12


@pytest.mark.parametrize("context", [1, 2])
def test_gradient_matches_finite_differences(context):
    """Central differences, h = 1e-5: error ~h²|f'''| + eps/h ≈ 1e-10; tolerance 1e-8."""
    p, q = random_ngram_pair(2, context=context)
    grad = exact_kl_grad(p, q)
    h = 1e-5
    fd = torch.zeros_like(grad)
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            e = torch.zeros_like(p.logits)
            e[i, j] = h
            fd[i, j] = (exact_kl(p.with_logits(p.logits + e), q) - exact_kl(p.with_logits(p.logits - e), q)) / (2 * h)
    assert float(grad.abs().max()) > 1e-3
    assert float((fd - grad).abs().max()) < 1e-8


def test_sampled_strings_match_the_exact_length_and_kl():
    """Seeded; the sampled mean length and the rb and mc estimates from 20000 strings are within
    5 standard errors of the exact values (two-sided 6e-7 each under the normal approximation)."""
    p, q = random_ngram_pair(3, context=2)
    tokens, mask = p.sample(20_000, torch.Generator().manual_seed(1))
    last = mask.sum(1) - 1
    assert bool((tokens.gather(1, last[:, None]) == p.eos).all()) and bool((tokens[~mask] == p.eos).all())
    length = summarize(mask.sum(1).double())
    assert abs(length.mean - float(p.expected_length())) < 5 * length.stderr
    stats = token_stats(p.next_token_logits(tokens), q.next_token_logits(tokens), tokens, mask)
    kl = float(exact_kl(p, q))
    for est in ("mc", "rb"):
        s = summarize(estimate(stats, est))
        assert abs(s.mean - kl) < 5 * s.stderr


def test_sampling_cap_raises():
    p, _ = random_ngram_pair(0, eos_bias=-8.0)  # p(EOS) ~ e^-8: strings of thousands of tokens
    with pytest.raises(RuntimeError, match="max_positions"):
        p.sample(4, torch.Generator().manual_seed(0), max_positions=50)
    with pytest.raises(ValueError, match="generator"):
        p.sample(4, None)


def test_bad_construction_names_the_argument():
    with pytest.raises(ValueError, match="context"):
        NGramLM(torch.zeros(3, 3, dtype=torch.float64), eos=2, context=0)
    with pytest.raises(ValueError, match="logits"):
        NGramLM(torch.zeros(4, 3, dtype=torch.float64), eos=2, context=1)
    p, _ = random_ngram_pair(0, context=1)
    with pytest.raises(ValueError, match="q"):
        exact_kl(p, random_ngram_pair(0, context=2)[1])


def test_enumeration_oracles_refuse_an_ngram_model_with_a_clear_error():
    from lmkl.exact import estimator_moments, random_ngram_pair

    p, q = random_ngram_pair(0)
    with pytest.raises(ValueError, match="TabularLM"):
        estimator_moments(p, q, "rb")
