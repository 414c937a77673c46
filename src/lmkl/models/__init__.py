"""lmkl.models — the only transformers-aware layer (besides lmkl.rewards): load a model pair, sample
from p, score p and q.

    pair = ModelPair.load(p_dir, q_dir)                        # offline; same vocabulary checked
    gen = torch.Generator().manual_seed(0)
    ro = sample(pair.p, pair.tokenizer, prompts, n_per_prompt=8, max_new_tokens=32, generator=gen,
                vocab_size=pair.vocab_size)                  # Rollout, y ~ p (tempered by τ)
    stats = score_rollout(pair, ro, micro_batch=16)            # TokenStats [B, T] for lmkl.kl.estimate
    out = sample_and_score(pair, prompts, 8, max_new_tokens=32, batch_size=64, generator=gen)  # both, batched

What is estimated: KL(p̃ ‖ q̃) with p̃, q̃ the models tempered by the same τ (τ = 1: the models), p̃
truncated only if top-k/top-p sampling was asked for (q̃ never is; `lmkl.models.scoring`), between
the length-capped processes when responses are cut at max_new_tokens (`Rollout`). Logit columns beyond
the tokenizer's vocabulary (embedding padding) get probability 0.

Modules: loading (offline load), pair (ModelPair, vocabulary checks), prompts (left padding,
position ids), distribution (the sampling distribution, one definition), sampling, rollout,
scoring, scored (sample_and_score: batched sampling + scoring), batching (the batch plan), pooling
(per-prompt estimates), testing (tiny offline models for tests), errors.
"""

from lmkl.models.distribution import next_token_logits
from lmkl.models.errors import ModelLoadError, NonFiniteLogitsError, VocabularyMismatchError
from lmkl.models.loading import load_causal_lm, quiet_progress_bars
from lmkl.models.pair import ModelPair
from lmkl.models.prompts import PromptBatch, encode_prompts
from lmkl.models.rollout import Rollout
from lmkl.models.sampling import sample
from lmkl.models.scored import Scored, sample_and_score
from lmkl.models.scoring import response_logits, score_rollout

__all__ = [
    "ModelLoadError",
    "ModelPair",
    "NonFiniteLogitsError",
    "PromptBatch",
    "Rollout",
    "Scored",
    "VocabularyMismatchError",
    "encode_prompts",
    "load_causal_lm",
    "next_token_logits",
    "quiet_progress_bars",
    "response_logits",
    "sample",
    "sample_and_score",
    "score_rollout",
]
