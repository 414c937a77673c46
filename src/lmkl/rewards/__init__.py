"""Reward functions for RLHF on sentiment: texts in, one float32 score per text out.

    reward = make_reward("vader", None)                      # VADER compound score in [-1, 1]
    reward = make_reward("classifier", Path(".../reward"))   # positive-class logit (the paper's reward)
    r = reward(["What a lovely film", "Dull."])              # tensor [2], float32, on the CPU

Both rewards are deterministic functions of the text (no sampling), so the reward adds no variance of
its own to the KL-regularised objective J(θ) = E_y[R(y)] − β·KL(p_θ ‖ q).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from lmkl.rewards.classifier import SentimentClassifierReward
from lmkl.rewards.vader import VaderReward

REWARD_KINDS = ("vader", "classifier")


class Reward(Protocol):
    name: str

    def __call__(self, texts: list[str]) -> torch.Tensor:  # [n] float32
        ...


def make_reward(
    kind: str,
    model_dir: Path | None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    *,
    positive_label: str = "POSITIVE",
) -> Reward:
    """The reward a profile's `reward` section names (kind, and the folder the download stage wrote).

    kind="vader": `model_dir` is ignored (the lexicon ships with the package).
    kind="classifier": `model_dir` is a local HF sequence-classification folder (assets/reward/).
    """
    if kind == "vader":
        return VaderReward()
    if kind == "classifier":
        if model_dir is None:
            raise ValueError("model_dir: the classifier reward needs the folder of a sequence-classification model")
        return SentimentClassifierReward(model_dir, batch_size=batch_size, device=device, positive_label=positive_label)
    raise ValueError(f"kind: expected one of {list(REWARD_KINDS)}, got {kind!r}")


__all__ = ["REWARD_KINDS", "Reward", "SentimentClassifierReward", "VaderReward", "make_reward"]
