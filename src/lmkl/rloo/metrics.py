"""metrics.csv of a training run: one row per update, the whole file rewritten atomically each step.

Columns (`COLUMNS`): step; reward (mean score) and reward_std; kl_mc, kl_rb (estimates of KL(p_old‖q)
on the sampled batch) with their stderr; kl_penalty = β · (the trained estimator's estimate);
policy_loss, grad_norm (before clipping), clip_frac (averaged over the step's micro-batches /
optimizer steps); entropy (mean −log p_old(y), an unbiased estimate of the sequence entropy);
response_length (tokens, EOS included), eos_frac; lr; seconds (wall time of the update).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lmkl.atomic import atomic_write_text

COLUMNS: tuple[str, ...] = (
    "step", "reward", "reward_std", "kl_mc", "kl_mc_stderr", "kl_rb", "kl_rb_stderr", "kl_penalty",
    "policy_loss", "grad_norm", "clip_frac", "entropy", "response_length", "eos_frac", "lr", "seconds",
)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of an existing metrics.csv (numbers as float, step as int); [] if there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in rows]


def write_metrics(path: str | Path, rows: list[dict]) -> Path:
    """Rewrite metrics.csv with `rows` (atomic: a reader sees the old file or the new one)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: (repr(float(row[k])) if k != "step" else int(row[k])) for k in COLUMNS})
    return atomic_write_text(path, buf.getvalue())
