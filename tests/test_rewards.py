"""Rewards (lmkl.rewards): VADER's compound score and a sequence classifier's positive-class logit."""

from __future__ import annotations

import pytest
import torch

from lmkl.rewards import SentimentClassifierReward, VaderReward, make_reward
from lmkl.rewards.classifier import positive_index
from lmkl.rewards.testing import build_tiny_classifier

TEXTS = ["What a wonderful, moving film. I loved it!", "Dull, boring and far too long.", "", "It is a film."]


def test_vader_scores_are_compound_scores_in_order():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    r = make_reward("vader", None)
    out = r(TEXTS)
    assert out.dtype == torch.float32 and out.shape == (4,)
    expected = [SentimentIntensityAnalyzer().polarity_scores(t)["compound"] for t in TEXTS]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float32))
    assert out[0] > 0.5 and out[1] < -0.3 and out[2] == 0.0  # clear polarities, empty text neutral
    assert isinstance(r, VaderReward) and r([]).shape == (0,)


def test_classifier_reward_is_the_positive_logit_unaffected_by_batching(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = build_tiny_classifier(tmp_path / "clf")
    # (no empty text: this test tokenizer adds no [CLS]/[SEP], so "" would be zero tokens; DistilBERT's adds them)
    texts = [*[t for t in TEXTS if t], "Another sentence that is quite a bit longer than the others, to force padding."]
    reward = make_reward("classifier", d, batch_size=2)  # 3 batches, padded differently
    assert isinstance(reward, SentimentClassifierReward)
    out = reward(texts)
    assert out.dtype == torch.float32 and out.shape == (4,)
    # Reference: each text alone (no padding), column of the POSITIVE label. Padding must be invisible
    # up to float32 round-off of a 2-layer, 32-dim network: 1e-5 absolute on logits of order 0.1.
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    with torch.no_grad():
        ref = torch.stack([model(**tok(t, return_tensors="pt")).logits[0, 1] for t in texts])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(ref[0], ref[1])  # a random classifier still separates inputs: the test can fail


def test_positive_label_resolution(tmp_path):
    assert positive_index({0: "NEGATIVE", 1: "POSITIVE"}, "POSITIVE") == 1
    assert positive_index({0: "positive", 1: "negative"}, "POSITIVE") == 0
    assert positive_index({0: "LABEL_0", 1: "LABEL_1"}, "POSITIVE") == 1
    with pytest.raises(ValueError, match="positive_label"):
        positive_index({0: "neg", 1: "neutral", 2: "pos"}, "POSITIVE")
    d = build_tiny_classifier(tmp_path / "clf", id2label={0: "POSITIVE", 1: "NEGATIVE"})
    r = make_reward("classifier", d)
    assert r.pos == 0


def test_make_reward_bad_input_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        make_reward("bleu", None)
    with pytest.raises(ValueError, match="model_dir"):
        make_reward("classifier", None)
    with pytest.raises(FileNotFoundError, match="model_dir"):
        make_reward("classifier", tmp_path / "nothing")
    with pytest.raises(TypeError, match="texts"):
        make_reward("vader", None)("a single string")
    d = build_tiny_classifier(tmp_path / "clf")
    with pytest.raises(ValueError, match="no tokens"):
        make_reward("classifier", d)(["fine", ""])
