"""A stand-in Hugging Face hub cache for the paper profile, built offline under the real repository ids.

    build_standin_hub(root)        # then HF_HOME=root HF_HUB_OFFLINE=1 lmkl download profile=paper
    python tests/hub_standin.py DIR

Writes huggingface_hub's own cache layout under `root/hub` (what `hf download` leaves):
`<kind>s--<org>--<name>/{blobs/<sha256>, refs/main, snapshots/<commit>/<file> → ../../blobs/<sha256>}`.

- lvwerra/gpt2-imdb: a tiny random GPT-2 (2 layers, 32 dims, n_positions 128) with GPT-2's own
  byte-level BPE (vocab.json + merges.txt, 50257 tokens; tests/data/gpt2_tokenizer/, see its README).
- lvwerra/distilbert-imdb: a tiny random DistilBERT classifier labelled NEGATIVE/POSITIVE, with a
  WordPiece vocabulary (vocab.txt) trained on the stand-in reviews.
- stanfordnlp/imdb (dataset): plain_text/{train,test,unsupervised}-00000-of-00001.parquet with
  columns text/label, reviews of several UCI IMDB sentences (data/uci_sentiment), all but a few
  deliberately short ones longer than 200 characters.

The weights are random: the stand-in exercises the code paths (hub cache, formats, shapes), not the
paper's numbers. Deterministic: the same files (hence the same commit hashes) on every build.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

GPT2_REPO, DISTILBERT_REPO, IMDB_REPO = "lvwerra/gpt2-imdb", "lvwerra/distilbert-imdb", "stanfordnlp/imdb"
REPOS = {GPT2_REPO: "model", DISTILBERT_REPO: "model", IMDB_REPO: "dataset"}
TOKENIZER_FILES = Path(__file__).parent / "data" / "gpt2_tokenizer"
N_POSITIONS = 128
# GPT-2 shapes of the stand-in policy: tiny (the tests), small (GPT-2's own 124 M shape, random weights:
# benchmarks/gpu_pipeline.py times an RLOO update at the paper's model size with it)
GPT2_SIZES = {"tiny": {"n_embd": 32, "n_layer": 2, "n_head": 2}, "small": {"n_embd": 768, "n_layer": 12, "n_head": 12}}
SHORT_REVIEWS = ("Too short to count.", "Fine.")  # below the 200-character filter: never prompts


def repo_folder(root: str | Path, repo_id: str) -> Path:
    """The cache folder of `repo_id` under HF_HOME=`root` (huggingface_hub's naming)."""
    return Path(root) / "hub" / f"{REPOS[repo_id]}s--{repo_id.replace('/', '--')}"


def _add_to_cache(root: Path, repo_id: str, files: Path) -> Path:
    """Move the files under `files` into the cache as one commit; returns the snapshot folder."""
    repo = repo_folder(root, repo_id)
    paths = sorted(p for p in files.rglob("*") if p.is_file())
    digests = {p.relative_to(files).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    commit = hashlib.sha1(json.dumps(digests, sort_keys=True).encode()).hexdigest()  # 40 hex digits, like git's
    snap = repo / "snapshots" / commit
    for rel, digest in digests.items():
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files / rel, blob)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))  # relative, as huggingface_hub makes them
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)  # no newline, as huggingface_hub writes it
    return snap


def _gpt2(out: Path, size: str = "tiny") -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    for name in ("vocab.json", "merges.txt"):
        (out / name).write_bytes(gzip.decompress((TOKENIZER_FILES / f"{name}.gz").read_bytes()))
    config = GPT2Config(vocab_size=50257, n_positions=N_POSITIONS, **GPT2_SIZES[size],
                        bos_token_id=50256, eos_token_id=50256)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(out)
    # GPT-2's own tokenizer settings (1024): the stand-in only shrinks the model, not its tokenizer
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"}))


def _distilbert(out: Path, texts: list[str]) -> None:
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=600, show_progress=False,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    (out / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in sorted(wp.get_vocab().items(), key=lambda kv: kv[1])))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}))
    id2label = {0: "NEGATIVE", 1: "POSITIVE"}
    config = DistilBertConfig(vocab_size=wp.get_vocab_size(), dim=32, hidden_dim=64, n_layers=2, n_heads=2,
                              max_position_embeddings=512, id2label=id2label,
                              label2id={v: k for k, v in id2label.items()}, pad_token_id=0)
    torch.manual_seed(1)
    DistilBertForSequenceClassification(config).save_pretrained(out)


def imdb_reviews() -> dict[str, list[dict]]:
    """{split: rows}: reviews of four consecutive UCI IMDB sentences (label: the first sentence's),
    train from the first 600 sentences, test from the next 300, unsupervised (label −1) from the rest."""
    from lmkl.assets.corpus import load_uci

    sentences = load_uci(("imdb",))

    def reviews(lo: int, hi: int, labelled: bool) -> list[dict]:
        rows = []
        for i in range(lo, hi, 4):
            group = sentences[i : min(i + 4, hi)]
            text = " ".join(s.text for s in group)
            while len(text) <= 200:  # a few groups of very short sentences: repeat to pass the filter
                text = f"{text} {text}"
            rows.append({"text": text, "label": group[0].label if labelled else -1})
        return rows

    split = {"train": reviews(0, 600, True), "test": reviews(600, 900, True), "unsupervised": reviews(900, len(sentences), False)}
    for name in ("train", "test"):
        split[name] += [{"text": t, "label": 0} for t in SHORT_REVIEWS]
    return split


def _imdb(out: Path, split: dict[str, list[dict]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (out / "plain_text").mkdir()
    for name, rows in split.items():
        table = pa.table({"text": pa.array([r["text"] for r in rows], pa.string()),
                          "label": pa.array([r["label"] for r in rows], pa.int64())})
        pq.write_table(table, out / "plain_text" / f"{name}-00000-of-00001.parquet")
    (out / "README.md").write_text("---\nconfigs:\n- config_name: plain_text\n---\nStand-in for stanfordnlp/imdb (tests only).\n")


def build_standin_hub(root: str | Path, gpt2_size: str = "tiny") -> Path:
    """Build the three repositories in the hub cache under HF_HOME=`root`; returns `root`.
    gpt2_size: the policy's shape, a key of GPT2_SIZES (tiny unless a benchmark needs the real size)."""
    root = Path(root)
    split = imdb_reviews()
    with tempfile.TemporaryDirectory() as tmp:
        for repo_id, build in ((GPT2_REPO, lambda out: _gpt2(out, gpt2_size)),
                               (DISTILBERT_REPO, lambda out: _distilbert(out, [r["text"] for r in split["train"]])),
                               (IMDB_REPO, lambda out: _imdb(out, split))):
            files = Path(tmp) / repo_id.replace("/", "--")
            files.mkdir()
            build(files)
            _add_to_cache(root, repo_id, files)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/hub_standin.py DIR   (then HF_HOME=DIR HF_HUB_OFFLINE=1 lmkl download profile=paper)")
    print(build_standin_hub(sys.argv[1]))
