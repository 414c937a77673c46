"""The tabular oracle: a proper distribution, the chain rule, sampling, and the lmkl.kl token layout."""

from __future__ import annotations

import pytest
import torch

from lmkl.exact import TabularLM, exact_kl, local_kl, random_tabular_pair, support
from lmkl.kl import token_stats


def test_strings_form_a_distribution(toy_pair, counterexample_pair):
    p, _ = toy_pair
    assert support(p).weights.numel() == 1 + 2 + 4 + 8
    assert float(support(p).weights.sum()) == pytest.approx(1.0, abs=1e-14)
    c, _ = counterexample_pair
    sup = support(c)
    assert sup.weights.numel() == 4  # EOS impossible before two letters, forced after
    assert bool((sup.mask.sum(1) == 3).all())


def test_kl_equals_the_prefix_chain_rule(toy_pair):
    """Σ_y p(y) log p(y)/q(y) = Σ_h p⃗(h) D(h) (paper-digest §3.1), the second side built from prefixes."""
    p, q = toy_pair
    logp = p.prefix_log_probs()
    # p⃗(h) for every prefix: walk the strings' positions (prefix id at t, token at t).
    tokens, mask = p.all_strings()
    ids = p.prefix_ids(tokens)
    reach = torch.zeros(p.logits.shape[0], dtype=torch.float64)
    reach[0] = 1.0
    for t in range(p.seq_len - 1):
        real = mask[:, t + 1]
        child, parent, tok = ids[real, t + 1], ids[real, t], tokens[real, t]
        reach[child] = reach[parent] * logp[parent, tok].exp()
    chain = (reach * local_kl(p.prefix_logits(), q.prefix_logits())).sum()
    assert float(exact_kl(p, q)) == pytest.approx(float(chain), abs=1e-14)


def test_token_layout_feeds_token_stats(toy_pair):
    p, q = toy_pair
    tokens, mask = p.sample(64, torch.Generator().manual_seed(0))
    assert tokens.shape == mask.shape == (64, p.seq_len)
    last = mask.sum(1) - 1  # EOS at the last real position, EOS padding after
    assert bool((tokens.gather(1, last[:, None]) == p.eos).all())
    assert bool((tokens[~mask] == p.eos).all())
    stats = token_stats(p.next_token_logits(tokens), q.next_token_logits(tokens), tokens, mask)
    torch.testing.assert_close(stats.logp.sum(1), p.log_prob(tokens, mask), rtol=0, atol=1e-13)


def test_sampling_frequencies_match_exact_probabilities():
    """n = 40000 draws: each string's count is within 5 binomial standard deviations (per-string
    two-sided 6e-7 under the normal approximation; 15 strings) — and the seed makes it deterministic."""
    p, _ = random_tabular_pair(0)
    n = 40_000
    tokens, _ = p.sample(n, torch.Generator().manual_seed(1))
    sup = support(p)

    def key(tok):  # one integer per string (the EOS padding is part of it, so keys are unique)
        return (tok * p.vocab_size ** torch.arange(p.seq_len)).sum(1)

    keys, counts = torch.unique(key(tokens), return_counts=True)
    assert torch.equal(keys, torch.sort(key(sup.tokens)).values)  # every draw is an enumerated string
    counts = counts.double()[torch.argsort(torch.argsort(key(sup.tokens)))]  # in support order
    expected = n * sup.weights
    sd = (n * sup.weights * (1 - sup.weights)).sqrt()
    assert bool(((counts - expected).abs() < 5 * sd).all())


def test_same_generator_seed_same_samples():
    p, _ = random_tabular_pair(0)
    a = p.sample(10, torch.Generator().manual_seed(5))
    b = p.sample(10, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_construction_names_the_argument():
    with pytest.raises(ValueError, match="logits"):
        TabularLM(torch.zeros(15, 3), eos=2, max_len=3)  # float32
    with pytest.raises(ValueError, match="logits"):
        TabularLM(torch.zeros(14, 3, dtype=torch.float64), eos=2, max_len=3)
    with pytest.raises(ValueError, match="eos"):
        TabularLM(torch.zeros(15, 3, dtype=torch.float64), eos=3, max_len=3)
    p, _ = random_tabular_pair(0)
    with pytest.raises(ValueError, match="generator"):
        p.sample(3, generator=0)
    with pytest.raises(ValueError, match="q"):
        exact_kl(p, random_tabular_pair(0, max_len=2)[1])
