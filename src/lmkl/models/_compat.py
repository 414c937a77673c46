"""The two places where transformers' API moved between the 4.x and 5.x lines we support.

- The KV cache argument of `forward` is `past_key_values` up to 5.x and `cache` from 5.x on (the old
  name is deprecated, to be removed in 5.40). We pass a cache object we own, so the output field
  name never matters: the object is updated in place.
- `logits_to_keep` (compute the LM head only on the last positions) is absent from some models.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch


@cache
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def new_cache(model: torch.nn.Module):
    """An empty KV cache for `model` (DynamicCache)."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # transformers 4.x: no config argument
        return DynamicCache()


def cache_kwargs(model: torch.nn.Module, cache) -> dict:
    """`{name: cache, "use_cache": True}` under the forward argument name this transformers uses."""
    name = "cache" if "cache" in _forward_params(type(model)) else "past_key_values"
    return {name: cache, "use_cache": True}


def keep_last_logits_kwargs(model: torch.nn.Module, n: int) -> dict:
    """Ask for logits of the last n positions only, if the model supports it (the caller slices anyway)."""
    return {"logits_to_keep": n} if "logits_to_keep" in _forward_params(type(model)) else {}
