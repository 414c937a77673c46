"""Throughput of our RLOO trainer vs TRL's `RLOOTrainer` on the same tiny model, batch and length.

    .venv/bin/python benchmarks/rloo_throughput.py [--steps 8 --warmup 2 --prompts 8 --k 2 --response-len 32]

Needs the `bench` extra (trl, accelerate). Both trainers start from the same random GPT-2 (saved once
to a temporary folder, with the tiny offline BPE tokenizer of `lmkl.models.testing`), use the same
prompts, reward (a pure-Python text function: no reward model in the timing), k samples per prompt,
`--prompts` prompts per update, up to `--response-len` new tokens at temperature 1, β = 0.05, one
policy-gradient pass per batch (TRL's num_iterations = 1, our num_ppo_epochs = 1), no dropout, no
gradient checkpointing, fp32, CPU. An update = rollout + reference pass + one optimizer step.

Ours runs in two configurations: `mc/reward` (TRL's own objective: k1 detached in the reward) and
`rb/paper` (the authors' RB penalty with its gradient). Reported: samples per second from the median
update time over `--steps` timed updates after `--warmup` ones, per arm, measured in this one process;
ratio = ours / TRL (≥ 1: ours is at least as fast). Appends one row per arm of ours to results.csv.
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
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results.csv")
PROMPTS = ["This movie was", "The plot", "A quiet film", "I would not", "The soundtrack", "Boring and",
           "One of the best", "It was fine", "The acting", "What a", "Nothing special", "I loved"]


def reward_texts(texts: list[str]) -> list[float]:
    """A cheap deterministic reward (share of the letter 'e'): the benchmark times the trainers."""
    return [t.count("e") / max(len(t), 1) for t in texts]


def build_model(root: Path, n_layer: int, n_embd: int) -> Path:
    from transformers import AutoTokenizer

    from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

    tok = build_tiny_tokenizer(root / "tok")
    V = len(AutoTokenizer.from_pretrained(tok, local_files_only=True))
    return build_tiny_gpt2(root / "policy", vocab_size=V, seed=0, tokenizer_dir=tok, n_layer=n_layer,
                           n_embd=n_embd, n_head=max(1, n_embd // 32), n_positions=256)


def prompts_for(n_updates: int, per_update: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" {i}") for i in range(n_updates * per_update)]


def time_ours(model_dir: Path, args, estimator: str, gradient: str) -> list[float]:
    from lmkl.models import ModelPair
    from lmkl.rloo import RLOOConfig, RLOOTrainer

    n = args.warmup + args.steps
    cfg = RLOOConfig(
        estimator=estimator, gradient=gradient, beta=0.05, k=args.k, num_prompts=args.prompts,
        num_ppo_epochs=1, micro_batch_size=args.prompts * args.k, lr=1e-5, max_new_tokens=args.response_len,
        steps=n, seed=0,
    )
    trainer = RLOOTrainer(ModelPair.load(model_dir, model_dir), lambda t: torch.tensor(reward_texts(t)),
                          prompts_for(n, args.prompts), cfg)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - t0)
    return times[args.warmup :]


def time_trl(model_dir: Path, args, out_dir: Path) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self._t0 = 0.0

        def on_step_begin(self, *a, **kw):
            self._t0 = time.perf_counter()

        def on_step_end(self, *a, **kw):
            self.times.append(time.perf_counter() - self._t0)

    n = args.warmup + args.steps
    batch = args.prompts * args.k
    cfg = RLOOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
        num_generations=args.k, max_completion_length=args.response_len, beta=0.05, num_iterations=1,
        learning_rate=1e-5, temperature=1.0, max_steps=n, use_cpu=True, report_to=[], save_strategy="no",
        logging_steps=10_000, gradient_checkpointing=False, disable_dropout=True, seed=0,
    )
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
    timer = StepTimer()
    trainer = RLOOTrainer(
        model=model, reward_funcs=lambda completions, **kw: reward_texts(completions), args=cfg,
        train_dataset=Dataset.from_dict({"prompt": prompts_for(n, args.prompts)}), processing_class=tok,
        callbacks=[timer],
    )
    trainer.train()
    return timer.times[args.warmup :]


def append_row(row: dict) -> None:
    """Through benchmarks/common.py when it exists, else appended here (header when the file is new)."""
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from common import append_row as shared_append  # type: ignore[import-not-found]
    except ImportError:
        shared_append = None
    if shared_append is not None:
        shared_append(row)
        return
    new = not RESULTS.is_file()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerow(row)
    with RESULTS.open("a", newline="") as f:
        f.write(buf.getvalue())


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed updates per trainer")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per update")
    ap.add_argument("--k", type=int, default=2, help="samples per prompt")
    ap.add_argument("--response-len", type=int, default=32)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-csv", action="store_true", help="do not append to benchmarks/results.csv")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")
    if args.threads:
        torch.set_num_threads(args.threads)
    samples = args.prompts * args.k
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp), args.n_layer, args.n_embd)
        med = {"trl": statistics.median(time_trl(model_dir, args, Path(tmp) / "trl"))}
        for est, grad in (("mc", "reward"), ("rb", "paper")):
            med[f"{est}/{grad}"] = statistics.median(time_ours(model_dir, args, est, grad))
    config = (f"gpt2 L{args.n_layer} d{args.n_embd}, {args.prompts} prompts x k{args.k}, T{args.response_len}, "
              f"1 epoch, median of {args.steps} after {args.warmup}, threads {torch.get_num_threads()}; ratio = ours/TRL samples/s")
    print(f"{'arm':<12} {'s/update':>9} {'samples/s':>10} {'vs TRL':>7}")
    for arm, s in med.items():
        print(f"{arm:<12} {s:9.3f} {samples / s:10.1f} {med['trl'] / s:6.2f}x")
    if not args.no_csv:
        import transformers

        for arm in ("mc/reward", "rb/paper"):
            append_row({
                "benchmark": "rloo_throughput", "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} {platform.node() and 'vm'}", "python": platform.python_version(),
                "torch": torch.__version__, "transformers": transformers.__version__, "commit": _commit(),
                "config": config, "load_avg_1m": f"{os.getloadavg()[0]:.1f}",
                "baseline": "trl RLOOTrainer", "baseline_s": f"{med['trl']:.4f}",
                "candidate": f"lmkl.rloo {arm}", "candidate_s": f"{med[arm]:.4f}",
                "ratio": f"{med['trl'] / med[arm]:.4f}",
            })
    return 0


if __name__ == "__main__":
    sys.exit(main())
