"""A sentiment classifier's raw positive-class logit as a reward: the paper's reward.

The paper (via TRL's sentiment example) scores responses with `lvwerra/distilbert-imdb` through a
`pipeline(..., function_to_apply="none")` and takes the POSITIVE output: the logit z_pos of the
positive class, not a probability (paper-digest §5). We compute the same number without a pipeline:
one forward pass per batch of texts, truncated to the model's maximum length, logits[:, pos].
"""

from __future__ import annotations

from pathlib import Path

import torch


def positive_index(id2label: dict[int, str], positive_label: str) -> int:
    """Column of the positive class: the label named `positive_label` (case-insensitive), else, for a
    two-class model with default names (LABEL_0, LABEL_1), column 1."""
    labels = {int(i): str(name) for i, name in id2label.items()}
    matches = [i for i, name in labels.items() if name.lower() == positive_label.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(labels) == 2 and sorted(labels.values()) == ["LABEL_0", "LABEL_1"]:
        return 1
    raise ValueError(f"positive_label: {positive_label!r} is not one of the classifier's labels {labels}")


class SentimentClassifierReward:
    name = "classifier"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        positive_label: str = "POSITIVE",
        max_length: int = 512,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"model_dir: {model_dir} holds no HF model (no config.json); run `lmkl download`")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.pos = positive_index(self.model.config.id2label, positive_label)
        self.batch_size, self.device = batch_size, torch.device(device)
        # DistilBERT's tokenizer reports 512; some tokenizers report a huge sentinel instead.
        self.max_length = min(max_length, int(getattr(self.tokenizer, "model_max_length", max_length) or max_length))

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """[n] float32 positive-class logits, one per text, in order (on the CPU)."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings, got a single string")
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            if not bool(enc["attention_mask"].sum(-1).all()):  # BERT-style tokenizers add [CLS] [SEP]: never empty
                raise ValueError(f"texts: the reward tokenizer encodes an item of batch {i // self.batch_size} to no tokens")
            logits = self.model(**enc).logits  # [b, num_labels]
            out.append(logits[:, self.pos].float().cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float32)
