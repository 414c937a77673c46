"""Sampled responses with everything needed to score them."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Rollout:
    """B sampled responses to left-padded prompts, B = prompts × samples per prompt (samples of one
    prompt are contiguous rows).

    input_ids [B, P+T] long: left-padded prompt, then the response (pad after EOS).
    attention_mask [B, P+T] long: 1 at real prompt tokens and at response positions up to and
      including the first EOS.
    prompt_len: P, the padded prompt width (the response starts at column P).
    response [B, T] long: the sampled tokens, pad after EOS; T ≤ max_new_tokens (sampling stops early
      once every row has ended).
    response_mask [B, T] bool: True up to and including the first EOS. A response cut at
      max_new_tokens has no EOS: all of its T positions are True and the statistics stop there,
      i.e. they concern the length-capped process (the distribution of the first T tokens).
    prompt_index [B] long: which prompt (index into the prompt list given to `sample`).
    texts: decoded responses without special tokens.
    temperature, top_k, top_p: the sampling distribution (`lmkl.models.distribution`).
    eos_token_id: the token that ends a response.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    response: torch.Tensor
    response_mask: torch.Tensor
    prompt_index: torch.Tensor
    texts: list[str]
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    eos_token_id: int | None = None

    def __len__(self) -> int:
        return int(self.response.shape[0])

    @property
    def ended(self) -> torch.Tensor:
        """[B] bool: the response ended with EOS (False: cut at max_new_tokens). A response may end
        with EOS exactly at the cap, so this reads the last real token, not the mask's length."""
        last = (self.response_mask.sum(dim=1) - 1).clamp(min=0)  # [B] index of the last real position
        return self.response.gather(1, last[:, None]).squeeze(1) == self.eos_token_id

    def select(self, idx: torch.Tensor | slice | list[int]) -> Rollout:
        """The rows `idx` (a slice, index list or bool/long tensor), e.g. for micro-batches."""
        if isinstance(idx, slice):
            rows = list(range(len(self)))[idx]
        else:
            t = torch.as_tensor(idx)
            rows = (t.nonzero().flatten() if t.dtype == torch.bool else t.long().flatten()).tolist()
        index = torch.tensor(rows, dtype=torch.long)
        return replace(
            self,
            input_ids=self.input_ids[index],
            attention_mask=self.attention_mask[index],
            response=self.response[index],
            response_mask=self.response_mask[index],
            prompt_index=self.prompt_index[index],
            texts=[self.texts[i] for i in rows],
        )
