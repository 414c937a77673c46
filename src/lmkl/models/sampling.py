"""Sample responses from p: batched ancestral sampling with a KV cache and an explicit generator."""

from __future__ import annotations

import torch

from lmkl.models._compat import cache_kwargs, keep_last_logits_kwargs, new_cache
from lmkl.models.distribution import check_sampling_options, next_token_logits
from lmkl.models.errors import NonFiniteLogitsError
from lmkl.models.prompts import encode_prompts, pad_token_id, position_ids
from lmkl.models.rollout import Rollout


def check_context_length(model, prompt_width: int, max_new_tokens: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and prompt_width + max_new_tokens > limit:
        raise ValueError(
            f"max_new_tokens: the longest prompt ({prompt_width} tokens) plus {max_new_tokens} new tokens "
            f"exceeds the model's context of {limit} positions"
        )


@torch.no_grad()
def sample(
    model,
    tokenizer,
    prompts: list[str],
    *,
    n_per_prompt: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator,
    vocab_size: int | None = None,
) -> Rollout:
    """Draw `n_per_prompt` responses per prompt from the model's sampling distribution.

    At each step the next token is drawn by `torch.multinomial(softmax(z), generator=generator)` with
    z = `next_token_logits(raw, temperature, vocab_size, top_k, top_p)`: the tempered (and, only if
    asked, truncated) model, never top-k/top-p by default. A row stops after its first EOS; all stop
    after `max_new_tokens` tokens, and a response cut there has no EOS position (see `Rollout`).
    Same generator state, prompts and model → same samples.

    vocab_size: the tokenizer's vocabulary (default len(tokenizer)); logit columns beyond it are
      embedding padding and get probability 0.
    Returns a Rollout of B = len(prompts) · n_per_prompt rows, samples of one prompt contiguous.
    """
    if isinstance(n_per_prompt, bool) or int(n_per_prompt) != n_per_prompt or n_per_prompt < 1:
        raise ValueError(f"n_per_prompt: expected an integer ≥ 1, got {n_per_prompt}")
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected an integer ≥ 1, got {max_new_tokens}")
    if not isinstance(generator, torch.Generator):
        raise ValueError("generator: expected a torch.Generator (sampling randomness is always explicit)")
    check_sampling_options(temperature, top_k, top_p)
    vocab_size = len(tokenizer) if vocab_size is None else vocab_size
    eos, pad = tokenizer.eos_token_id, pad_token_id(tokenizer)
    device = next(model.parameters()).device

    prompt = encode_prompts(tokenizer, prompts)
    check_context_length(model, prompt.width, max_new_tokens)
    ids = prompt.input_ids.repeat_interleave(n_per_prompt, dim=0).to(device)  # [B, P]
    attn = prompt.attention_mask.repeat_interleave(n_per_prompt, dim=0).to(device)  # [B, P]
    B = ids.shape[0]  # sequences
    cache = new_cache(model)
    step_ids, step_pos = ids, position_ids(attn)  # first step: the whole prompt
    next_pos = step_pos[:, -1] + 1  # [B] position of the first response token
    alive = torch.ones(B, dtype=torch.bool, device=device)
    tokens: list[torch.Tensor] = []  # each [B]
    live: list[torch.Tensor] = []  # each [B] bool: the row was still running at that step
    for t in range(max_new_tokens):
        out = model(
            input_ids=step_ids, attention_mask=attn, position_ids=step_pos,
            **cache_kwargs(model, cache), **keep_last_logits_kwargs(model, 1),
        )
        z = next_token_logits(out.logits[:, -1], temperature=temperature, vocab_size=vocab_size, top_k=top_k, top_p=top_p)
        _check_finite(z, alive, model, t)
        y = torch.multinomial(torch.softmax(z, dim=-1), 1, generator=generator).squeeze(-1)  # [B]
        y = torch.where(alive, y, torch.full_like(y, pad))
        tokens.append(y)
        live.append(alive)
        alive = alive & (y != eos)
        if not bool(alive.any()):
            break
        # Feed the new token; rows that have ended feed pad, hidden from everyone by attention_mask 0.
        attn = torch.cat([attn, live[-1].long()[:, None]], dim=1)
        step_ids, step_pos = y[:, None], next_pos[:, None]
        next_pos = next_pos + 1

    response = torch.stack(tokens, dim=1)  # [B, T]
    response_mask = torch.stack(live, dim=1)  # [B, T]
    texts = [tokenizer.decode(r[m].tolist(), skip_special_tokens=True) for r, m in zip(response.cpu(), response_mask.cpu())]
    return Rollout(
        input_ids=torch.cat([ids, response], dim=1),
        attention_mask=torch.cat([prompt.attention_mask.repeat_interleave(n_per_prompt, 0).to(device), response_mask.long()], dim=1),
        prompt_len=prompt.width,
        response=response,
        response_mask=response_mask,
        prompt_index=torch.arange(len(prompts)).repeat_interleave(n_per_prompt),
        texts=texts,
        temperature=float(temperature),
        top_k=top_k,
        top_p=top_p,
        eos_token_id=eos,
    )


def _check_finite(z: torch.Tensor, alive: torch.Tensor, model, step: int) -> None:
    """NaN or +inf logits in a running row would make multinomial fail obscurely: name them."""
    bad = (torch.isnan(z) | (z == float("inf"))).any(dim=-1) & alive
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        name = getattr(model, "name_or_path", "") or type(model).__name__
        raise NonFiniteLogitsError(
            f"model {name}: NaN or +inf logits while sampling sequence {row}, response position {step}"
        )
