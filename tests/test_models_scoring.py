"""Scoring: teacher-forced statistics on response positions, micro-batching, NaN logits, and an exact
end-to-end unbiasedness check of rb and mc through sampling + scoring."""

from __future__ import annotations

import math

import pytest
import torch

import models_fixtures
from lmkl.kl import Estimate, concat_stats, estimate, pool_over_prompts, summarize, token_stats
from lmkl.models import NonFiniteLogitsError, encode_prompts, sample, score_rollout
from lmkl.models.batching import plan_batches
from models_fixtures import PROMPTS

tiny_dirs = models_fixtures.tiny_dirs  # module-scoped fixture shared by the model tests
tiny_pair = models_fixtures.tiny_pair  # module-scoped fixture shared by the model tests


def _rollout(pair, n=8, T=10, seed=0, temperature=1.0, prompts=PROMPTS):
    return sample(pair.p, pair.tokenizer, prompts, n_per_prompt=n, max_new_tokens=T, temperature=temperature,
                  generator=torch.Generator().manual_seed(seed), vocab_size=pair.vocab_size)


def test_micro_batching_does_not_change_the_statistics(tiny_pair):
    ro = _rollout(tiny_pair)
    with torch.no_grad():
        whole, parts = score_rollout(tiny_pair, ro), score_rollout(tiny_pair, ro, micro_batch=5)
    for a, b in zip(whole, parts):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert torch.equal(whole.mask, ro.response_mask)
    assert (whole.kl[~whole.mask] == 0).all() and (whole.logp[~whole.mask] == 0).all()
    assert (whole.kl[whole.mask] >= 0).all()


def test_scores_match_an_unpadded_direct_computation(tiny_pair):
    ro = _rollout(tiny_pair, n=2, temperature=0.8)
    with torch.no_grad():
        stats = score_rollout(tiny_pair, ro)
    enc = encode_prompts(tiny_pair.tokenizer, PROMPTS)
    V = tiny_pair.vocab_size
    for row in range(len(ro)):
        i = int(ro.prompt_index[row])
        prompt = enc.input_ids[i][enc.attention_mask[i].bool()]
        n = int(ro.response_mask[row].sum())
        ids = torch.cat([prompt, ro.response[row, :n]])[None]
        with torch.no_grad():
            sl = slice(len(prompt) - 1, len(prompt) - 1 + n)
            zp = tiny_pair.p(input_ids=ids).logits[:, sl, :V] / 0.8
            zq = tiny_pair.q(input_ids=ids).logits[:, sl, :V] / 0.8
        ref = token_stats(zp, zq, ro.response[row:row + 1, :n], torch.ones(1, n, dtype=torch.bool))
        for a, b in zip(stats[:3], ref[:3]):
            torch.testing.assert_close(a[row, :n], b[0], atol=5e-5, rtol=1e-5)


def test_nan_logits_name_the_model_and_position(tiny_pair):
    ro = _rollout(tiny_pair, n=2)

    def poison(module, inputs, output):
        out = output.clone()
        out[1, -1, 5] = float("nan")  # sequence 1, last computed position
        return out

    handle = tiny_pair.q.get_output_embeddings().register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteLogitsError, match=r"model q \(.*\).*sequence \d+, response position \d+"):
            score_rollout(tiny_pair, ro.select([0, 1, 2, 3]), micro_batch=4)
    finally:
        handle.remove()


def test_rb_and_mc_are_unbiased_for_the_capped_kl_through_sampling_and_scoring(tiny_pair):
    """Exact KL of the 2-token-capped processes at τ = 0.8, by enumerating every first token:
    KL = KL_1 + Σ_{y1 ≠ EOS} p̃(y1) KL_2(y1). Every positional or tempering slip would bias it."""
    tau, V = 0.8, tiny_pair.vocab_size
    eos = tiny_pair.tokenizer.eos_token_id
    prompts = ["The movie was", "Boring, slow and far too long. I would"]
    enc = encode_prompts(tiny_pair.tokenizer, prompts)
    exact = []
    for i in range(len(prompts)):
        prompt = enc.input_ids[i][enc.attention_mask[i].bool()]
        ids = torch.cat([prompt.expand(V, -1), torch.arange(V)[:, None]], dim=1)  # every first token
        with torch.no_grad():
            lp = torch.log_softmax(tiny_pair.p(input_ids=ids).logits[:, -2:, :V].double() / tau, -1)
            lq = torch.log_softmax(tiny_pair.q(input_ids=ids).logits[:, -2:, :V].double() / tau, -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)  # [V, 2]: KL_1 (same in every row), KL_2(y1)
        p1 = lp[0, 0].exp()
        second = torch.where(torch.arange(V) == eos, 0.0, p1 * kl[:, 1]).sum()
        exact.append(float(kl[0, 0] + second))
    truth = sum(exact) / len(exact)

    ro = _rollout(tiny_pair, n=300, T=2, temperature=tau, prompts=prompts, seed=11)
    with torch.no_grad():
        stats = score_rollout(tiny_pair, ro, micro_batch=200)
    for name in ("rb", "mc"):
        per_prompt = [summarize(estimate(_rows(stats, ro.prompt_index == i), name)) for i in range(2)]
        pooled = pool_over_prompts(per_prompt)
        # 4 standard errors: a false alarm has probability ~6e-5 for a correct implementation (seeded,
        # so the test is deterministic); a bias of one position's KL (~1 nat here) is ≫ 4 se.
        assert abs(pooled.mean - truth) < 4 * pooled.stderr, (name, pooled, truth)


def _rows(stats, rows):
    return type(stats)(*(f[rows] for f in stats))


def test_pooling_is_the_mean_of_means_with_combined_stderr():
    a = Estimate(mean=1.0, stderr=0.3, ci_low=0, ci_high=0, n=10, frac_negative=0.2)
    b = Estimate(mean=3.0, stderr=0.4, ci_low=0, ci_high=0, n=30, frac_negative=0.0)
    pooled = pool_over_prompts([a, b])
    assert pooled.mean == 2.0 and math.isclose(pooled.stderr, 0.25)  # sqrt(0.09 + 0.16) / 2
    assert pooled.n == 40 and math.isclose(pooled.frac_negative, 2 / 40)
    assert math.isclose(pooled.ci_high - pooled.mean, 1.959963984540054 * 0.25)


def test_batch_plan_covers_every_prompt_sample_once():
    for P, N, B in [(5, 4, 8), (3, 10, 4), (1, 1, 1), (7, 3, 3)]:
        plan = plan_batches(P, N, B)
        assert all(len(ids) * n <= B for ids, n in plan)
        count = [0] * P
        for ids, n in plan:
            for i in ids:
                count[i] += n
        assert count == [N] * P


def test_concat_stats_pads_positions_as_masked(tiny_pair):
    with torch.no_grad():
        a = score_rollout(tiny_pair, _rollout(tiny_pair, n=2, T=3))
        b = score_rollout(tiny_pair, _rollout(tiny_pair, n=2, T=9, seed=1))
    both = concat_stats([a, b])
    assert both.mask.shape == (len(a.mask) + len(b.mask), max(a.mask.shape[1], b.mask.shape[1]))
    torch.testing.assert_close(estimate(both, "rb"), torch.cat([estimate(a, "rb"), estimate(b, "rb")]))
