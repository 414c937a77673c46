"""Seconds per step and peak memory of TRL with its own KL vs TRL with lmkl's RB term (CPU, same run).

    .venv/bin/python benchmarks/trl_kl_overhead.py                       # tiny + smollm2-shape, GRPO and RLOO
    .venv/bin/python benchmarks/trl_kl_overhead.py --models tiny --trainers grpo --steps 3 --rounds 1   # quick

Arms, per trainer and model, at the same β = 0.05:
  trl    TRL's default KL: GRPOTrainer's k3 in the loss (with its importance-weight correction, the 1.16
         default) / RLOOTrainer's k1 in the reward; TRL scores the reference with its fused LM head.
  lmkl   RBGRPOTrainer / RBRLOOTrainer: β · kl_surrogate(rb_causal) from the two models' hidden states.
Models: `tiny` is the tiny profile's GPT-2 shape (V 4096, 2 layers, d 128); `smollm2` is a randomly
initialised LlamaForCausalLM with SmolLM2-135M's config (V 49152, 30 layers, d 576, tied embeddings) —
a stand-in for the real weights, which change neither the FLOPs nor the memory (completions are forced
to full length with min_new_tokens, so both arms generate and train on the same number of tokens).

Each arm runs in its own process (its peak memory is its own), arms alternate (trl, lmkl, trl, ...) for
`--rounds` rounds so that load drift hits both; the first step of each run is a warm-up and dropped.
Reported: median seconds per optimizer step (generation + reference scoring + loss + backward + SGD
step: the whole TRL step) and two memory figures — the process's peak resident memory (VmHWM) and the
peak during training above the resident memory once the trainer is built (weights, optimizer and the
reference excluded) — each as a ratio lmkl / trl. Targets: peak memory ≤ 1.1×, time ≤ 1.2×.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PeakRSS, _status_kib, append_row, environment

BETA = 0.05
MODELS = {
    "tiny": "GPT-2 V4096 L2 d128 (tiny profile shape)",
    "smollm2": "Llama V49152 L30 d576, SmolLM2-135M config, random weights",
}
PROMPTS = ["The movie was", "It was fine:", "I loved it", "Boring and slow"]


def build_model(kind: str, directory: Path) -> Path:
    """A model folder (weights + the tiny test tokenizer) of the named shape, seeded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

    tok = build_tiny_tokenizer(directory / "tok")  # ids ≥ its 300 entries decode to "" (reward sees text only)
    if kind == "tiny":
        return build_tiny_gpt2(directory / "m", 4096, seed=0, tokenizer_dir=tok, n_layer=2, n_embd=128, n_head=4)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=1,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    out = directory / "m"
    model.save_pretrained(out)
    import shutil

    for f in tok.iterdir():
        shutil.copy2(f, out / f.name)
    return out


def reward(completions, **_):
    return [len(c) / 100 for c in completions]


def run_arm(trainer: str, arm: str, model_dir: str, steps: int, tokens: int, batch: int, threads: int) -> dict:
    """One training run in this process; returns step times and memory."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from lmkl.integrations.trl import RBGRPOTrainer, RBRLOOTrainer

    torch.set_num_threads(threads)
    Config = GRPOConfig if trainer == "grpo" else RLOOConfig
    cls = {("grpo", "trl"): GRPOTrainer, ("grpo", "lmkl"): RBGRPOTrainer,
           ("rloo", "trl"): RLOOTrainer, ("rloo", "lmkl"): RBRLOOTrainer}[trainer, arm]  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        args = Config(
            output_dir=out, per_device_train_batch_size=batch, num_generations=4, max_completion_length=tokens,
            generation_kwargs={"min_new_tokens": tokens}, max_steps=steps, beta=BETA, bf16=False, optim="sgd",
            learning_rate=1e-4, disable_dropout=True, seed=0, report_to=[], save_strategy="no", logging_steps=1,
            use_cpu=True,
        )  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tr = cls(model, reward, args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS * 8}),
                 processing_class=AutoTokenizer.from_pretrained(model_dir))  # fmt: skip
        ends: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, *_, **__):
                ends.append(time.perf_counter())

        tr.add_callback(Clock())
        start = time.perf_counter()
        with PeakRSS() as peak:
            tr.train()
        hwm_total = _status_kib("VmHWM") * 1024
    times = [b - a for a, b in zip([start, *ends[:-1]], ends)][1:]  # first step: warm-up
    return {"times": times, "extra_peak": peak.extra, "peak_total": hwm_total}


def measure(trainer: str, arm: str, model_dir: Path, tokens: int, a) -> dict:
    """One run of an arm in a fresh process (its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--child", trainer, arm, str(model_dir), "--steps", str(a.steps),
           "--tokens", str(tokens), str(tokens), "--batch", str(a.batch), "--threads", str(a.threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{trainer}/{arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--trainers", nargs="+", default=["grpo", "rloo"], choices=["grpo", "rloo"])
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per run (the first is dropped)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per arm, alternating trl/lmkl")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step (2 prompts × 4 generations)")
    ap.add_argument("--tokens", nargs=2, type=int, default=[24, 32], metavar=("TINY", "SMOLLM2"),
                    help="completion tokens per sequence for each model")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-csv", action="store_true", help="do not append rows to results.csv")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        trainer, arm, model_dir = a.child
        print(json.dumps(run_arm(trainer, arm, model_dir, a.steps, a.tokens[0], a.batch, a.threads)))
        return
    tokens = dict(zip(MODELS, a.tokens))
    lines = ["| model | trainer | trl s/step | lmkl s/step | time × | trl peak MB | lmkl peak MB | peak × "
             "| trl train-extra MB | lmkl train-extra MB | extra × |", "|" + "---|" * 11]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for kind in a.models:
            model_dir = build_model(kind, Path(tmp) / kind)
            for trainer in a.trainers:
                res = {"trl": [], "lmkl": []}
                for _ in range(a.rounds):
                    for arm in ("trl", "lmkl"):
                        res[arm].append(measure(trainer, arm, model_dir, tokens[kind], a))
                t = {arm: statistics.median(x for r in rs for x in r["times"]) for arm, rs in res.items()}
                peak = {arm: statistics.median(r["peak_total"] for r in rs) / 2**20 for arm, rs in res.items()}
                extra = {arm: statistics.median(r["extra_peak"] for r in rs) / 2**20 for arm, rs in res.items()}
                row = {
                    **environment(), "benchmark": "trl_kl_overhead",
                    "config": f"{trainer} {MODELS[kind]}, {a.batch} seqs x {tokens[kind]} tokens, "
                              f"steps {a.steps}-1 x rounds {a.rounds}, threads {a.threads}, fp32",
                    "baseline": "trl default KL", "baseline_s": f"{t['trl']:.4f}", "candidate": "lmkl rb_causal",
                    "candidate_s": f"{t['lmkl']:.4f}", "ratio": f"{t['lmkl'] / t['trl']:.3f}",
                    "extra_peak_mb": f"{extra['lmkl']:.1f}", "mem_ratio": f"{peak['lmkl'] / peak['trl']:.3f}",
                    "baseline_peak_mb": f"{peak['trl']:.1f}", "candidate_peak_mb": f"{peak['lmkl']:.1f}",
                    "baseline_extra_peak_mb": f"{extra['trl']:.1f}",
                }  # fmt: skip
                if not a.no_csv:
                    append_row(row)
                lines.append(
                    f"| {kind} | {trainer} | {t['trl']:.3f} | {t['lmkl']:.3f} | {t['lmkl'] / t['trl']:.2f} "
                    f"| {peak['trl']:.0f} | {peak['lmkl']:.0f} | {peak['lmkl'] / peak['trl']:.2f} "
                    f"| {extra['trl']:.0f} | {extra['lmkl']:.0f} | {extra['lmkl'] / max(extra['trl'], 1e-9):.2f} |"
                )
                print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
