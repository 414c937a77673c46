"""Sampling from p: the scored distribution is exactly the sampled one; seeds; EOS and the length cap."""

from __future__ import annotations

import pytest
import torch

import models_fixtures
from lmkl.models import encode_prompts, next_token_logits, response_logits, sample
from models_fixtures import PROMPTS

tiny_dirs = models_fixtures.tiny_dirs  # module-scoped fixture shared by the model tests
tiny_pair = models_fixtures.tiny_pair  # module-scoped fixture shared by the model tests


def _sample(pair, seed=0, **kw):
    opts = dict(n_per_prompt=6, max_new_tokens=12, vocab_size=pair.vocab_size) | kw
    return sample(pair.p, pair.tokenizer, PROMPTS, generator=torch.Generator().manual_seed(seed), **opts)


def _capture_step_logits(model):
    """Record the LM head's raw output at every generation step (last position of each call)."""
    seen = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(o[:, -1].detach()))
    return seen, handle


@pytest.mark.parametrize(
    "opts",
    [dict(temperature=1.0), dict(temperature=0.7), dict(temperature=1.3, top_k=7), dict(temperature=0.9, top_p=0.8)],
    ids=["tau1", "tau0.7", "tau1.3-topk7", "tau0.9-topp0.8"],
)
def test_response_logits_reproduce_the_sampling_distribution(tiny_pair, opts):
    seen, handle = _capture_step_logits(tiny_pair.p)
    try:
        ro = _sample(tiny_pair, **opts)
    finally:
        handle.remove()
    T = ro.response.shape[1]  # response width
    assert len(seen) == T
    sampled = torch.stack(
        [next_token_logits(z, vocab_size=tiny_pair.vocab_size, **opts) for z in seen], dim=1
    )  # [B, T, V]: the distributions the tokens were drawn from (KV cache, incremental)
    scored = response_logits(tiny_pair.p, ro, vocab_size=tiny_pair.vocab_size)  # teacher forcing, one pass
    m = ro.response_mask
    # Same support (padding rows, truncation sets) at every real position ...
    assert torch.equal(torch.isinf(sampled[m]), torch.isinf(scored[m]))
    assert torch.isinf(scored[m][:, tiny_pair.vocab_size:]).all()  # the 4 embedding padding rows
    # ... and the same log-probabilities up to float32 rounding of a different matmul order (values O(1)).
    finite = torch.isfinite(sampled[m])
    lp_s = torch.log_softmax(sampled[m], -1)[finite]
    lp_r = torch.log_softmax(scored[m], -1)[finite]
    torch.testing.assert_close(lp_r, lp_s, atol=2e-5, rtol=0)
    # The sampled token always has positive probability under the scored distribution.
    tok_logits = scored[m].gather(-1, ro.response[m][:, None])
    assert torch.isfinite(tok_logits).all()


def test_left_padding_positions_match_an_unpadded_pass(tiny_pair):
    ro = _sample(tiny_pair)
    z = response_logits(tiny_pair.p, ro, vocab_size=tiny_pair.vocab_size)
    enc = encode_prompts(tiny_pair.tokenizer, PROMPTS)
    for row in range(0, len(ro), 6):  # the first sample of each prompt
        prompt = enc.input_ids[ro.prompt_index[row]][enc.attention_mask[ro.prompt_index[row]].bool()]
        n = int(ro.response_mask[row].sum())
        ids = torch.cat([prompt, ro.response[row, :n]])[None]  # unpadded, default positions 0..L-1
        with torch.no_grad():
            ref = tiny_pair.p(input_ids=ids).logits[0, len(prompt) - 1: len(prompt) - 1 + n]
        ref = next_token_logits(ref, vocab_size=tiny_pair.vocab_size)
        torch.testing.assert_close(z[row, :n], ref, atol=2e-5, rtol=0)


def test_same_seed_same_samples_other_seed_other_samples(tiny_pair):
    a, b, c = _sample(tiny_pair, seed=3), _sample(tiny_pair, seed=3), _sample(tiny_pair, seed=4)
    assert torch.equal(a.response, b.response) and a.texts == b.texts
    assert a.texts != c.texts


def test_eos_and_length_cap_semantics(tiny_pair):
    ro = _sample(tiny_pair, n_per_prompt=16, max_new_tokens=10)
    eos, pad = tiny_pair.tokenizer.eos_token_id, tiny_pair.tokenizer.pad_token_id
    lengths = ro.response_mask.sum(1)
    assert ro.ended.any() and (~ro.ended).any()  # both kinds occur with eos_boost=3 (seeded)
    for b in range(len(ro)):
        n = int(lengths[b])
        assert ro.response_mask[b, :n].all() and not ro.response_mask[b, n:].any()  # a prefix
        real = ro.response[b, :n]
        if ro.ended[b]:
            assert real[-1] == eos and (real[:-1] != eos).all()  # the first EOS is the last real position
            assert (ro.response[b, n:] == pad).all()
        else:
            assert n == 10 and (real != eos).all()  # cut at the cap: no EOS position
    P = ro.prompt_len
    assert torch.equal(ro.attention_mask[:, P:].bool(), ro.response_mask)
    assert torch.equal(ro.input_ids[:, P:], ro.response)
    assert ro.prompt_index.tolist() == [i for i in range(len(PROMPTS)) for _ in range(16)]


def test_padding_rows_are_never_sampled(tiny_dirs):
    # A model whose padding rows would dominate if they were not masked: boost row 300 hugely.
    from lmkl.models import ModelPair

    pair = ModelPair.load(tiny_dirs.p, tiny_dirs.p)
    with torch.no_grad():
        pair.p.lm_head.weight[301] = 10.0
    ro = sample(pair.p, pair.tokenizer, ["A"], n_per_prompt=32, max_new_tokens=4,
                generator=torch.Generator().manual_seed(0), vocab_size=pair.vocab_size)
    assert int(ro.response[ro.response_mask].max()) < pair.vocab_size


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(n_per_prompt=0), "n_per_prompt"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=0.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_p=1.5), "top_p"),
        (dict(max_new_tokens=500), "context"),
        (dict(generator=None), "generator"),
    ],
)
def test_bad_sampling_arguments_are_named(tiny_pair, kw, match):
    opts = dict(n_per_prompt=2, max_new_tokens=4, generator=torch.Generator().manual_seed(0)) | kw
    with pytest.raises(ValueError, match=match):
        sample(tiny_pair.p, tiny_pair.tokenizer, PROMPTS, **opts)
