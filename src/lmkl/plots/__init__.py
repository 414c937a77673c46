"""Matplotlib figures of the pipeline (Agg backend: no display needed).

One module per figure; each has `figure(tables...) -> matplotlib.figure.Figure` and
`caption(tables...) -> str` (Markdown: what the figure shows, how it was made, and the numbers it
shows, read from the same tables). `save(fig, stem, formats, dpi)` writes every format atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are built as matplotlib.figure.Figure objects, never shown

from lmkl.atomic import atomic_write_bytes

# One colour per estimator / form, stable across figures.
COLORS = {
    "mc": "#d62728", "rb": "#1f77b4", "k2": "#7f7f7f", "k3": "#ff7f0e", "k3_token": "#bcbd22",
    "cv_opt": "#9467bd", "rb_cv": "#17becf",
    "mc_seq": "#d62728", "mc_causal": "#ff9896", "rb_paper": "#aec7e8", "rb_causal": "#1f77b4", "k3_loss": "#ff7f0e",
}


def color(name: str) -> str:
    return COLORS.get(name, "#333333")


def save(fig, stem: Path, formats: list[str], dpi: int) -> list[Path]:
    """Write `fig` as stem.<fmt> for every format, each atomically; returns the paths."""
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata={"CreationDate": None} if fmt == "pdf" else None)
        out.append(atomic_write_bytes(Path(f"{stem}.{fmt}"), buf.getvalue()))
    return out
