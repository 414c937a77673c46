"""The tiny profile's tokenizer: a byte-level BPE trained with `tokenizers` on the committed corpus.

GPT-2's scheme at a smaller scale: byte-level pre-tokenization (every string encodes, no unknown
token), one special token `<|endoftext|>` that is EOS, BOS and PAD at once (as GPT-2 uses it; padded
positions are identified by attention masks, never by id). No BOS is added when encoding, so prompts
tokenize to their text only, as in the paper's GPT-2 setup. Deterministic: same texts, same vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"


def train_bpe_tokenizer(texts: Sequence[str], directory: str | Path, *, vocab_size: int, model_max_length: int) -> Path:
    """Train on `texts`, save a PreTrainedTokenizerFast into `directory` (created); returns it.

    vocab_size counts the 256 byte symbols, the merges and the special token; it must exceed 257.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size <= 257:
        raise ValueError(f"vocab_size: expected > 257 (256 bytes + EOS + merges), got {vocab_size}")
    if not texts:
        raise ValueError("texts: expected a non-empty corpus")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=model_max_length,
        padding_side="left",  # prompts are left-padded for generation
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(directory)
    return directory
