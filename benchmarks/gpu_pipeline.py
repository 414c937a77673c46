"""The pipeline half of the GPU check (benchmarks/gpu_check.sh): the paper profile on the device, a
training run interrupted and resumed there, and the seconds per RLOO update at the paper's sizes.

    .venv/bin/python benchmarks/gpu_pipeline.py --device cuda                # what gpu_check.sh runs
    .venv/bin/python benchmarks/gpu_pipeline.py --device cpu --parts smoke resume --step-model tiny   # CPU dry run
    .venv/bin/python benchmarks/gpu_pipeline.py --table-since 2026-12-04T19:00:00   # the table of one check

Parts (each appends one row, benchmark=gpu_pipeline, to benchmarks/results.csv):
  smoke   `snakemake --config profile=paper scale=smoke device=<device>` (with --resources gpu=<GPUs>)
          from the stand-in hub cache (tests/hub_standin.py) with HF_HUB_OFFLINE=1, or from --hf-home
          (a real hub cache, e.g. one filled by `hf download`); wall time, five figures checked.
  resume  `lmkl train` (the smoke assets, a run outside the smoke sweep, a checkpoint every update)
          killed with SIGKILL once two updates are logged and a checkpoint exists, as a preempted job
          would be, then run again: the second invocation must start after update 1 (from the
          checkpoint, not afresh) and end with every update 1..N exactly once in metrics.csv.
  step    seconds per RLOO update at the paper's per-update sizes (16 prompts × k = 2, 53 new tokens,
          4 PPO epochs, micro-batches of 16: profile=paper scale=full) with a GPT-2-small-sized policy
          (12 layers × 768, V = 50257: the stand-in hub's GPT-2 at full size, random weights, so every
          response runs to 53 tokens — the paper's fixed length); the median over updates 2..N (the
          first one warms up). Projected wall time of the full paper sweep = runs × train.steps ×
          seconds per update, one GPU, training only (evaluation and the studies add a few percent:
          see the smoke part's per-rule benchmarks for their relative cost).
A failed part is reported (ok = false, the reason in `detail`) and the others still run; the exit
status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from common import RESULTS, append_row, environment  # noqa: E402

BIN = Path(sys.executable).parent
FIGURES = ("variance", "training_curves", "pareto", "gradient_variance", "oracle")
RESUME_RUN = {"estimator": "rb", "beta": "0.1", "seed": "7"}  # seed 7: outside the smoke sweep (seed 0)


def tool(name: str) -> str:
    """The venv's console script next to this python (lmkl, snakemake), else the one on PATH."""
    path = BIN / name
    return str(path) if path.exists() else name


def standin_hub(work: Path, gpt2_size: str) -> Path:
    """The stand-in hub cache with a GPT-2 of `gpt2_size` under `work` (built once per size)."""
    from hub_standin import build_standin_hub

    root = work / f"hf_{gpt2_size}"
    return root if (root / "hub").is_dir() else build_standin_hub(root, gpt2_size=gpt2_size)


def hub_env(hf_home: Path, offline: bool) -> dict[str, str]:
    env = {**os.environ, "HF_HOME": str(hf_home), "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    env.pop("HF_HUB_CACHE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def plan(overrides: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([tool("lmkl"), "config", "sweep", *overrides], env=env, cwd=REPO, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def gpu_count(device: str) -> int:
    import torch

    return torch.cuda.device_count() if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else 0


def part_smoke(args, work: Path, env: dict[str, str]) -> dict:
    """The paper profile's whole DAG at smoke scale on the device, from the hub cache."""
    cmd = [tool("snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", str(args.cores)]
    if gpu_count(args.device):
        cmd += ["--resources", f"gpu={gpu_count(args.device)}"]
    cmd += ["--config", "profile=paper", "scale=smoke", f"device={args.device}"]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.monotonic() - start
    (work / "snakemake.log").write_text(proc.stdout + proc.stderr)
    p = plan(["profile=paper", "scale=smoke", f"device={args.device}"], env)
    figs = Path(work) / p["figures"]
    missing = [n for n in FIGURES if not (figs / f"{n}.png").is_file()]
    ok = proc.returncode == 0 and not missing
    bench = Path(work) / p["results"] / "benchmarks"
    per_rule = {}
    for tsv in sorted(bench.rglob("*.tsv")):
        rule = tsv.relative_to(bench).parts[0].removesuffix(".tsv")
        with tsv.open() as f:
            per_rule[rule] = per_rule.get(rule, 0.0) + sum(float(r["s"]) for r in csv.DictReader(f, delimiter="\t"))
    detail = "rules (s): " + " ".join(f"{k}={v:.0f}" for k, v in per_rule.items())
    if not ok:
        detail = f"rc={proc.returncode} missing figures {missing}; tail: " + (proc.stdout + proc.stderr)[-600:].replace("\n", " | ")
    return {"config": f"paper scale=smoke device={args.device} cores={args.cores}", "seconds": wall, "ok": ok,
            "detail": detail}


def _metrics_steps(path: Path) -> list[int]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def part_resume(args, work: Path, env: dict[str, str]) -> dict:
    """`lmkl train` killed (SIGKILL) after two updates, then resumed; checks the metrics."""
    steps = args.resume_steps
    base = ["profile=paper", "scale=smoke", f"device={args.device}", *(f"{k}={v}" for k, v in RESUME_RUN.items()),
            f"train.steps={steps}", "train.checkpoint_every=1", "wandb.enabled=false"]
    p = plan(base[:3], env)  # where the profile's outputs go (the plan knows no run keys)
    results = Path(work) / p["results"]
    if not (results / "assets" / "manifest.json").is_file():  # the smoke part's assets, else fetch them
        subprocess.run([tool("lmkl"), "download", *base[:3]], env=env, cwd=work, check=True, capture_output=True)
    run_dir = results / "train" / f"{RESUME_RUN['estimator']}_beta{RESUME_RUN['beta']}_seed{RESUME_RUN['seed']}"
    metrics = run_dir / "metrics.csv"
    start = time.monotonic()
    with open(work / "resume_first.log", "w") as log:
        first = subprocess.Popen([tool("lmkl"), "train", *base], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        killed_at = None
        while first.poll() is None and time.monotonic() - start < args.timeout:
            if len(_metrics_steps(metrics)) >= 2 and len(list((run_dir / "checkpoints").glob("*"))) >= 1:
                first.send_signal(signal.SIGKILL)  # a preempted job: no chance to clean up
                first.wait()
                killed_at = len(_metrics_steps(metrics))
                break
            time.sleep(0.05)
    if killed_at is None:
        first.kill()
        return {"config": f"paper scale=smoke device={args.device} steps={steps}", "seconds": time.monotonic() - start,
                "ok": False, "detail": f"the first invocation ended (rc={first.returncode}) before it could be interrupted"}
    second = subprocess.run([tool("lmkl"), "train", *base], env=env, cwd=work, capture_output=True, text=True,
                            timeout=args.timeout)
    (work / "resume_second.log").write_text(second.stdout + second.stderr)
    wall = time.monotonic() - start
    logged = [int(m[1]) for m in re.finditer(r" step (\d+)/(\d+) ", second.stdout + second.stderr)]
    final = _metrics_steps(metrics)
    ok = second.returncode == 0 and final == list(range(1, steps + 1)) and bool(logged) and logged[0] > 1 \
        and (run_dir / "model").is_dir()
    detail = (f"killed after {killed_at} updates; resumed at update {logged[0] if logged else '?'}; "
              f"metrics steps {final[:3]}..{final[-1:] if final else []} ({len(final)} rows), rc={second.returncode}")
    return {"config": f"paper scale=smoke device={args.device} steps={steps}", "seconds": wall, "ok": ok, "detail": detail}


def part_step(args, work: Path, env: dict[str, str]) -> dict:
    """Seconds per RLOO update at the paper's sizes with a GPT-2-small-sized policy; projection."""
    overrides = ["profile=paper", f"device={args.device}", "estimator=rb", "beta=0.05", "seed=0",
                 f"train.steps={args.step_updates}", f"train.checkpoint_every={args.step_updates}", "wandb.enabled=false"]
    subprocess.run([tool("lmkl"), "download", *overrides[:2]], env=env, cwd=work, check=True, capture_output=True)
    proc = subprocess.run([tool("lmkl"), "train", *overrides], env=env, cwd=work, capture_output=True, text=True,
                          timeout=args.timeout)
    (work / "step.log").write_text(proc.stdout + proc.stderr)
    full = plan(["profile=paper"], env)
    cfg = plan(overrides[:2], env)
    run_dir = Path(work) / cfg["results"] / "train" / "rb_beta0.05_seed0"
    with (run_dir / "metrics.csv").open() as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    per_step = statistics.median(seconds[1:] or seconds)
    runs, steps = len(full["runs"]), full["config"]["train"]["steps"]
    hours = runs * steps * per_step / 3600
    t = full["config"]["train"]
    return {"config": f"paper scale=full device={args.device} model={args.step_model} updates={len(seconds)}",
            "seconds": per_step, "ok": proc.returncode == 0,
            "detail": (f"{per_step:.2f} s/update ({t['num_prompts']} prompts x k={t['k']}, {t['max_new_tokens']} tokens, "
                       f"{t['num_ppo_epochs']} PPO epochs); full sweep {runs} runs x {steps} updates -> "
                       f"{hours:.1f} h on one {'GPU' if 'cuda' in str(args.device) else 'such device'} (training only)"),
            "projected_h": f"{hours:.2f}"}


def table(since: str) -> str:
    """One table of every row this check appended (token_kl and gpu_pipeline) since `since`."""
    with RESULTS.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("date", "") >= since]
    lines = [f"{'benchmark':<13} {'config':<58} {'arm':<10} {'ms / s':>9} {'GB/s':>7} {'% peak':>6}  note"]
    for r in rows:
        if r["benchmark"] == "token_kl":
            ms = float(r["candidate_s"]) * 1e3 if r.get("candidate_s") else float("nan")
            share = f"{float(r['peak_share']) * 100:.0f}" if r.get("peak_share") else ""
            note = f"{r.get('ratio', '')}x ref" + (f", {r['vs_mc_min']}x MC-min" if r.get("vs_mc_min") else "")
            lines.append(f"{'token_kl':<13} {r['config'][:58]:<58} {r['candidate']:<10} {ms:>7.2f}ms "
                         f"{r.get('gb_per_s', ''):>7} {share:>6}  {note}")
        elif r["benchmark"] == "gpu_pipeline":
            lines.append(f"{'gpu_pipeline':<13} {r['config'][:58]:<58} {r['candidate']:<10} {float(r['candidate_s']):>8.1f}s "
                         f"{'':>7} {'':>6}  {'ok' if r.get('ok') == 'True' else 'FAILED'}: {r.get('detail', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="auto | cpu | cuda | cuda:<i> (cpu: a dry run of the parts)")
    ap.add_argument("--parts", nargs="+", default=["smoke", "resume", "step"], choices=["smoke", "resume", "step"])
    ap.add_argument("--hf-home", type=Path, default=None, help="a real hub cache (default: build the stand-in)")
    ap.add_argument("--online", action="store_true", help="let huggingface_hub reach the network (default offline)")
    ap.add_argument("--cores", type=int, default=min(8, os.cpu_count() or 1), help="snakemake --cores of the smoke part")
    ap.add_argument("--resume-steps", type=int, default=8, help="updates of the interrupted run")
    ap.add_argument("--step-updates", type=int, default=4, help="timed run: updates (the first is not counted)")
    ap.add_argument("--step-model", default="small", choices=["small", "tiny"],
                    help="GPT-2 of the timed run: small (12 x 768, the paper's size) or tiny (a CPU dry run)")
    ap.add_argument("--timeout", type=float, default=420, help="seconds per subprocess (a hang guard)")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--no-csv", action="store_true", help="print only")
    ap.add_argument("--table-since", default=None, help="print the table of rows dated from this ISO time, and exit")
    args = ap.parse_args(argv)
    if args.table_since:
        print(table(args.table_since))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="lmkl_gpu_"))
    work.mkdir(parents=True, exist_ok=True)
    failed = False
    for part in args.parts:
        folder = work / ("smoke" if part == "resume" else part)  # resume reuses the smoke part's assets
        folder.mkdir(exist_ok=True)
        hf = args.hf_home or standin_hub(work, args.step_model if part == "step" else "tiny")
        env = hub_env(hf, offline=not args.online)
        fn = {"smoke": part_smoke, "resume": part_resume, "step": part_step}[part]
        try:
            res = fn(args, folder, env)
        except (subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
            why = f"{e!r} {getattr(e, 'stderr', '') or ''}".replace("\n", " | ")
            res = {"config": f"{part} device={args.device}", "seconds": float("nan"), "ok": False, "detail": why[-800:]}
        failed |= not res["ok"]
        print(f"{part:<7} {'ok' if res['ok'] else 'FAILED'} {res['seconds']:.2f} s  {res['config']}  {res['detail']}", flush=True)
        if not args.no_csv:
            append_row({**environment(), "benchmark": "gpu_pipeline", "config": res["config"], "candidate": part,
                        "candidate_s": f"{res['seconds']:.3f}", "ok": res["ok"], "detail": res["detail"],
                        **({"projected_h": res["projected_h"]} if "projected_h" in res else {})})
    print(f"work folder: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
