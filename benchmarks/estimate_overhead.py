"""Overhead of the Rao–Blackwellized statistics over MC-only ones, end to end on the same samples.

    .venv/bin/python benchmarks/estimate_overhead.py [--n-layer 2 --n-embd 128 --batch 16 --response-len 64]

Both arms run the same teacher-forced forward passes of p and q (`lmkl.models.response_logits`) on
the same rollout; they differ only in the statistics:
  mc: log p(y_t|·) and log q(y_t|·) of the sampled tokens only (fused cross-entropy: the cheapest
      correct way to get them, so the ratio is not flattered by a slow baseline);
  rb: `lmkl.models.score_rollout`, i.e. `lmkl.kl.token_stats` (logp, logq and the full-vocabulary
      KL at every position), which every estimator, mc included, is computed from.
Models: two random GPT-2s with GPT-2's vocabulary (50257; no pretrained weights are needed — the
cost does not depend on the values). Tokens: uniform over the vocabulary, every position real.
Reports the median of --reps repetitions per arm (arms interleaved, after --warmup runs), the ratio
rb/mc − 1 (target ≤ 5 %), and appends a row to benchmarks/results.csv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

VOCAB = 50257  # GPT-2's
RESULTS = Path(__file__).with_name("results.csv")


class _Vocabulary:
    """Stands in for a tokenizer: ModelPair only needs the vocabulary size and EOS."""

    eos_token_id = VOCAB - 1

    def __len__(self) -> int:
        return VOCAB


def build_pair(n_layer: int, n_embd: int, n_positions: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmkl.models import ModelPair

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cfg = GPT2Config(vocab_size=VOCAB, n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // 64),
                         n_positions=n_positions)
        models.append(GPT2LMHeadModel(cfg).eval())
    return ModelPair(models[0], models[1], _Vocabulary())


def build_rollout(batch: int, prompt_len: int, response_len: int, seed: int):
    from lmkl.models import Rollout

    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(VOCAB - 1, (batch, prompt_len), generator=g)
    response = torch.randint(VOCAB - 1, (batch, response_len), generator=g)  # no EOS: every position real
    mask = torch.ones(batch, response_len, dtype=torch.bool)
    return Rollout(
        input_ids=torch.cat([prompt, response], 1), attention_mask=torch.ones(batch, prompt_len + response_len, dtype=torch.long),
        prompt_len=prompt_len, response=response, response_mask=mask, prompt_index=torch.zeros(batch, dtype=torch.long),
        texts=[""] * batch, eos_token_id=VOCAB - 1,
    )


@torch.no_grad()
def mc_only(pair, ro) -> torch.Tensor:
    """Per-sequence U = Σ_t log p(y_t) − log q(y_t) from the same forward passes, no full-vocabulary KL."""
    from lmkl.models import response_logits

    m, y = ro.response_mask, ro.response
    out = []
    for model in (pair.p, pair.q):
        z = response_logits(model, ro, vocab_size=VOCAB)[m].float()  # [N, V] real positions
        out.append(-torch.nn.functional.cross_entropy(z, y[m], reduction="none"))
    return (out[0] - out[1]).sum()


@torch.no_grad()
def rb_stats(pair, ro) -> torch.Tensor:
    from lmkl.models import score_rollout

    return score_rollout(pair, ro).kl.sum()


def time_arms(arms: dict, reps: int, warmup: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in arms.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(reps):  # interleaved, so that a slow spell of the machine hits both arms
        for name, fn in arms.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def append_row(row: dict) -> None:
    """Append one row to results.csv (header written when the file is new), atomically."""
    from lmkl.atomic import atomic_write_text

    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(row))
    if not old:
        writer.writeheader()
    writer.writerow(row)
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(RESULTS, old + buf.getvalue())


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--response-len", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-csv", action="store_true", help="do not append to benchmarks/results.csv")
    args = ap.parse_args(argv)

    import transformers

    pair = build_pair(args.n_layer, args.n_embd, args.prompt_len + args.response_len)
    ro = build_rollout(args.batch, args.prompt_len, args.response_len, seed=0)
    times = time_arms({"mc": lambda: mc_only(pair, ro), "rb": lambda: rb_stats(pair, ro)}, args.reps, args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["rb"] / med["mc"] - 1
    config = (f"gpt2 L{args.n_layer} d{args.n_embd} V{VOCAB}, B{args.batch} x (P{args.prompt_len} + "
              f"T{args.response_len}), reps {args.reps}, threads {torch.get_num_threads()}")
    print(f"{config}\nmc-only  median {med['mc'] * 1e3:8.1f} ms\nrb stats median {med['rb'] * 1e3:8.1f} ms\n"
          f"overhead {overhead:+.1%} (target ≤ +5%)")
    if not args.no_csv:
        append_row({
            "benchmark": "estimate_overhead", "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "commit": _commit(), "config": config,
            "load_avg_1m": f"{os.getloadavg()[0]:.1f}",  # a busy machine inflates both arms unevenly
            "baseline": "mc-only", "baseline_s": f"{med['mc']:.4f}", "candidate": "rb token_stats",
            "candidate_s": f"{med['rb']:.4f}", "ratio": f"{med['rb'] / med['mc']:.4f}",
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
