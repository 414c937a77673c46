"""The committed corpus: UCI "Sentiment Labelled Sentences" (data/uci_sentiment/, see data/README.md).

    sentences = load_uci(("imdb",))          # 1,000 LabelledSentence(text, label, source)

The files are found in $LMKL_DATA_DIR, else ./data (the repository root, where stages run), else the
`data/` folder of the source checkout this package is installed from (editable installs).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

UCI_SOURCES: tuple[str, ...] = ("imdb", "amazon", "yelp")
UCI_SUBDIR = "uci_sentiment"


@dataclass(frozen=True)
class LabelledSentence:
    text: str
    label: int  # 0 negative, 1 positive
    source: str  # imdb | amazon | yelp


def data_dir() -> Path:
    """The folder holding `uci_sentiment/`; FileNotFoundError naming every place looked in."""
    candidates = [os.environ.get("LMKL_DATA_DIR"), Path.cwd() / "data", Path(__file__).resolve().parents[3] / "data"]
    for c in candidates:
        if c and (Path(c) / UCI_SUBDIR).is_dir():
            return Path(c).resolve()
    looked = ", ".join(str(c) for c in candidates if c)
    raise FileNotFoundError(f"data: no {UCI_SUBDIR}/ folder found (looked in {looked}); set LMKL_DATA_DIR")


def uci_files(sources: tuple[str, ...] | list[str] = UCI_SOURCES, root: Path | None = None) -> list[Path]:
    """The JSONL file of each source, in the order given; ValueError for an unknown source."""
    unknown = [s for s in sources if s not in UCI_SOURCES]
    if unknown:
        raise ValueError(f"sources: unknown UCI source(s) {unknown}; expected some of {list(UCI_SOURCES)}")
    base = (root or data_dir()) / UCI_SUBDIR
    return [base / f"{s}.jsonl" for s in sources]


def load_uci(sources: tuple[str, ...] | list[str] = UCI_SOURCES, root: Path | None = None) -> list[LabelledSentence]:
    """All sentences of `sources`, in file order (source by source)."""
    out: list[LabelledSentence] = []
    for source, path in zip(sources, uci_files(sources, root)):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                rec = json.loads(line)
                out.append(LabelledSentence(text=rec["text"], label=int(rec["label"]), source=source))
    return out
