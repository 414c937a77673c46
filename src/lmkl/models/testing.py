"""Tiny offline models and tokenizers for tests and benchmarks (no model hub, no network).

    tok_dir = build_tiny_tokenizer(tmp / "tok")                  # byte-level BPE, ~300 tokens, EOS + PAD
    p_dir = build_tiny_gpt2(tmp / "p", vocab_size=len(tok), seed=0, tokenizer_dir=tok_dir)

Each model directory is self-contained (weights, config and, when `tokenizer_dir` is given, a copy of
the tokenizer files), so `lmkl.models.load_causal_lm(dir)` and `lmkl estimate --p dir` work on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

# A few sentences of the kind the pipeline prompts with; enough for a byte-level BPE to learn merges.
CORPUS: tuple[str, ...] = (
    "This movie was absolutely wonderful, I loved it!",
    "The plot was thin and the acting was worse.",
    "A quiet, beautiful film about a family by the sea.",
    "I would not watch this again, not even for free.",
    "The soundtrack alone is worth the ticket.",
    "Boring, slow and far too long.",
    "One of the best performances I have seen this year.",
    "It was fine: nothing special, nothing terrible.",
)
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def build_tiny_tokenizer(directory: str | Path, *, vocab_size: int = 300, corpus: tuple[str, ...] = CORPUS) -> Path:
    """Train a byte-level BPE tokenizer on `corpus`, save it as a PreTrainedTokenizerFast in `directory`.

    Special tokens: EOS `<|endoftext|>` (also BOS, as in GPT-2) and a separate PAD `<|pad|>`, so that
    padding can never be confused with a sampled EOS. Deterministic: same corpus → same vocabulary.
    Returns the directory.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown token needed
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, pad_token=PAD_TOKEN
    )
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(directory)
    return directory


def build_tiny_gpt2(
    directory: str | Path,
    vocab_size: int,
    seed: int,
    *,
    tokenizer_dir: str | Path | None = None,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 2,
    n_positions: int = 128,
    init_std: float = 0.02,
    eos_token_id: int | None = None,
    eos_boost: float = 0.0,
) -> Path:
    """Save a randomly initialised GPT-2 LM (`GPT2LMHeadModel`) to `directory`; returns the directory.

    vocab_size: embedding rows (may exceed the tokenizer's vocabulary: the extra rows are padding).
    seed: the weights are a function of (seed, shape arguments) only; the global RNG is left untouched.
    tokenizer_dir: if given, its files are copied in and EOS/PAD ids are read from it.
    init_std: std of the weight initialisation; larger values give peakier next-token distributions
      (the default 0.02 gives nearly uniform ones).
    eos_boost: adds about this much to EOS's logit at every position, so that responses end (with V
      tokens and nearly uniform logits, P(EOS) ≈ e^b / (e^b + V − 1) per step). Done by a constant
      final-layer-norm bias and an EOS output row along it: logit_EOS = h·w_EOS ≈ b.
    """
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    pad_token_id = None
    if tokenizer_dir is not None:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        eos_token_id = tok.eos_token_id if eos_token_id is None else eos_token_id
        pad_token_id = tok.pad_token_id
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        initializer_range=init_std,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    if eos_boost:
        if eos_token_id is None:
            raise ValueError("eos_boost: needs eos_token_id (or tokenizer_dir)")
        with torch.no_grad():
            model.transformer.ln_f.bias.fill_(1.0)  # h ≈ LN(x) + 1: a constant direction in every state
            model.lm_head.weight[eos_token_id] = eos_boost / n_embd  # h·w_EOS ≈ eos_boost (tied to wte)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer_dir is not None:
        for f in Path(tokenizer_dir).iterdir():
            if f.is_file():
                shutil.copy2(f, directory / f.name)
    return directory
