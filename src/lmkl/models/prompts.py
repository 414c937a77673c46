"""Prompts as one left-padded batch (so every row's next token sits in the last column)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PromptBatch:
    """input_ids [N, P] long, left-padded; attention_mask [N, P] long (1 = real token); P = longest prompt."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])


def pad_token_id(tokenizer) -> int:
    """The id written at padded positions. Its value never matters (attention_mask hides it); PAD if
    the tokenizer has one, else EOS (GPT-2 has no PAD)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted over real tokens only, [B, L] long: with left padding the first
    real token is at position 0, as it would be unpadded (absolute position embeddings, e.g. GPT-2,
    depend on it). Padded positions get 0; their outputs are never read."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(tokenizer, prompts: list[str]) -> PromptBatch:
    """Tokenize `prompts` (the tokenizer's own special tokens, e.g. a BOS, are added as it does) and
    left-pad them to one width.

    A prompt that encodes to no token starts from the BOS token (GPT-2's unconditional sampling
    context, <|endoftext|>), or EOS if there is no BOS: the first response token needs a context.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts: expected a non-empty list of strings")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer(text)["input_ids"] or [start] for text in prompts]
    P = max(len(x) for x in ids)  # padded prompt width
    pad = pad_token_id(tokenizer)
    input_ids = torch.full((len(ids), P), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), P), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, P - len(x):] = torch.tensor(x, dtype=torch.long)
        attention_mask[i, P - len(x):] = 1
    return PromptBatch(input_ids=input_ids, attention_mask=attention_mask)
