"""sample_and_score: the batched sample-then-score loop equals sampling and scoring each batch by hand."""

from __future__ import annotations

import pytest
import torch

import models_fixtures
from lmkl.kl import concat_stats
from lmkl.models import sample, sample_and_score, score_rollout
from lmkl.models.batching import plan_batches
from models_fixtures import PROMPTS

tiny_dirs = models_fixtures.tiny_dirs  # module-scoped fixture shared by the model tests
tiny_pair = models_fixtures.tiny_pair  # module-scoped fixture shared by the model tests


@pytest.mark.parametrize(("n", "batch_size"), [(2, 4), (5, 2)])  # whole prompts per batch; one prompt over batches
def test_equals_the_batches_done_by_hand(tiny_pair, n, batch_size):
    kw = {"max_new_tokens": 7, "temperature": 0.9}
    out = sample_and_score(tiny_pair, PROMPTS, n, batch_size=batch_size, generator=torch.Generator().manual_seed(3),
                           device="cpu", **kw)
    gen = torch.Generator().manual_seed(3)
    parts, index, texts, ended = [], [], [], []
    for ids, m in plan_batches(len(PROMPTS), n, batch_size):
        ro = sample(tiny_pair.p, tiny_pair.tokenizer, [PROMPTS[i] for i in ids], n_per_prompt=m, generator=gen,
                    vocab_size=tiny_pair.vocab_size, **kw)
        with torch.no_grad():
            parts.append(score_rollout(tiny_pair, ro, micro_batch=batch_size))
        index.append(torch.tensor(ids)[ro.prompt_index])
        texts += ro.texts
        ended.append(ro.ended)
    want = concat_stats(parts)
    assert len(out) == len(PROMPTS) * n and out.texts == texts
    for got, ref in zip(out.stats, want):
        assert torch.equal(got, ref)  # the same generator stream: the same samples, bit for bit
    assert torch.equal(out.prompt_index, torch.cat(index))
    assert torch.equal(out.prompt_index, torch.arange(len(PROMPTS)).repeat_interleave(n))  # prompt-major
    assert torch.equal(out.ended, torch.cat(ended))
    assert torch.equal(out.lengths, out.stats.mask.sum(-1))
    assert out.sampling_s > 0 and out.scoring_s > 0


def test_reports_each_batch_and_keeps_no_graph(tiny_pair):
    seen = []
    with torch.enable_grad():
        out = sample_and_score(tiny_pair, PROMPTS, 3, max_new_tokens=5, batch_size=4,
                               generator=torch.Generator().manual_seed(0), on_batch=seen.append)
    assert sum(seen) == len(out) == 9 and len(seen) == len(plan_batches(len(PROMPTS), 3, 4))
    assert not out.stats.logp.requires_grad
