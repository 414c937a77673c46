"""Per-token KL backends against the authors' reference, in one run.

    .venv/bin/python benchmarks/token_kl.py [--N 2048 --V 50257 151936 --dtype float32 --threads 2]
    .venv/bin/python benchmarks/token_kl.py --quick          # N=512, V=50257, 3 reps: a smoke run
    .venv/bin/python benchmarks/token_kl.py --N 2048 --V 50257 --busy 0 3   # alone, then with 3 other jobs

Reference (the authors' code, rycolab/kl-rb): log_softmax of both logits, exp, multiply, sum over the
vocabulary (plus the two gathers of the sampled token), differentiated by autograd. Candidates: the
`lmkl.kl` backends (chunked, compiled, triton on CUDA). Two modes per case:
  fwd      logp, logq, kl from logits [N, V] (no autograd);
  fwd+bwd  kl_surrogate(form="rb_causal") and .backward() w.r.t. logits_p (the training step's cost);
           the reference runs the same surrogate on its own statistics.
The MC minimum (`mc_min`, the least any KL penalty needs, as TRL's selective log-softmax computes):
log p(y) and log q(y) by logsumexp and gather of both models' logits, eager and torch.compile'd
(the faster of the two is the MC minimum); in fwd+bwd, the score-function surrogate of those two
differentiated w.r.t. logits_p. `vs_mc_min` = candidate time / MC-minimum time (1.0: RB is free).
--busy K starts K other processes, each a 2-thread torch matrix product loop (a shared node, CI, a
pipeline running jobs side by side), before the measurements and stops them after.
Timing: --warmup untimed calls per arm (the compiled backend compiles there), then --reps timed
repetitions with the arms interleaved (other load on the machine hits both alike); median reported.
Extra peak memory: CPU, the process's resident high-water mark above its level before the call
(benchmarks/common.PeakRSS: tracemalloc cannot see torch's allocator); CUDA, torch.cuda's peak
allocated above the allocation before the call. Inputs are excluded; gradients are included.
GB/s: the bytes a perfect kernel must move (fwd: read both logits; fwd+bwd: read them twice and
write d logits_p) over the median time; on CUDA also as a share of --peak-gbps.
One CSV row per (case, mode, backend) goes to benchmarks/results.csv.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PeakRSS, append_row, environment
from lmkl.kl import kl_surrogate
from lmkl.kl.surrogates import surrogate_from_stats
from lmkl.kl.token_stats import TokenStats


def reference_stats(zp: torch.Tensor, zq: torch.Tensor, tokens: torch.Tensor):
    """The authors' computation: two full log_softmax, exp, multiply, sum; every [N, V] temporary kept."""
    log_p = torch.log_softmax(zp.float(), dim=-1)
    log_q = torch.log_softmax(zq.float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    idx = tokens.unsqueeze(-1)
    return log_p.gather(-1, idx).squeeze(-1), log_q.gather(-1, idx).squeeze(-1), kl


def mc_minimum(zp: torch.Tensor, zq: torch.Tensor, tokens: torch.Tensor):
    """log p(y), log q(y) [N]: logsumexp and gather of each model's logits, nothing over the vocabulary kept."""
    idx = tokens.unsqueeze(-1)
    zp, zq = zp.float(), zq.float()
    logp = zp.gather(-1, idx).squeeze(-1) - torch.logsumexp(zp, dim=-1)
    logq = zq.gather(-1, idx).squeeze(-1) - torch.logsumexp(zq, dim=-1)
    return logp, logq


def mc_minimum_train(zp: torch.Tensor, zq: torch.Tensor, tokens: torch.Tensor, fn=mc_minimum) -> None:
    """The score-function KL surrogate stopgrad(Σ (log p − log q)) · Σ log p, backward w.r.t. logits_p."""
    x = zp.detach().requires_grad_()
    logp, logq = fn(x, zq, tokens)
    ((logp - logq).sum().detach() * logp.sum()).backward()


@functools.cache
def compiled_mc_minimum():
    return torch.compile(mc_minimum, dynamic=True)


def arms(backends: list[str], mode: str, zp, zq, tokens):
    """name -> zero-argument callable running one repetition of `mode`."""
    N = zp.shape[0]  # rows; laid out as one batch of N positions
    tok2, mask = tokens.view(1, N), torch.ones(1, N, dtype=torch.bool, device=zp.device)
    from lmkl.kl import backends as registry

    def fwd(name):
        fn = registry.BACKENDS[name]
        return lambda: fn(zp, zq, tokens)

    def train(name):
        def run():
            x = zp.detach().requires_grad_()
            kl_surrogate(x.view(1, N, -1), zq.view(1, N, -1), tok2, mask, backend=name).sum().backward()

        return run

    def ref_train():
        x = zp.detach().requires_grad_()
        lp, lq, kl = reference_stats(x, zq, tokens)
        stats = TokenStats(lp.view(1, N), lq.view(1, N), kl.view(1, N), mask)
        surrogate_from_stats(stats, "rb_causal").sum().backward()

    if mode == "fwd":
        out = {"reference": lambda: reference_stats(zp, zq, tokens)}
        out["mc_min_eager"] = lambda: mc_minimum(zp, zq, tokens)
        out["mc_min_compiled"] = lambda: compiled_mc_minimum()(zp, zq, tokens)
        out.update({b: fwd(b) for b in backends})
    else:
        out = {"reference": ref_train}
        out["mc_min_eager"] = lambda: mc_minimum_train(zp, zq, tokens)
        out["mc_min_compiled"] = lambda: mc_minimum_train(zp, zq, tokens, compiled_mc_minimum())
        out.update({b: train(b) for b in backends})
    return out


class BusyMachine:
    """K other processes, each a 2-thread torch matrix product loop, for the duration of the block."""

    CODE = "import torch; torch.set_num_threads(2); a = torch.randn(512, 512)\nwhile True: a @ a"

    def __init__(self, k: int):
        self.k, self.procs = k, []

    def __enter__(self) -> BusyMachine:
        self.procs = [subprocess.Popen([sys.executable, "-c", self.CODE]) for _ in range(self.k)]
        time.sleep(3.0 if self.k else 0.0)  # let them import torch and start multiplying
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn, device, warmup: int, reps: int) -> tuple[list[float], int]:
    """Warm up, then (times of `reps` runs, extra peak bytes of one run)."""
    for _ in range(warmup):
        fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        sync(device)
        extra = torch.cuda.max_memory_allocated() - base
    else:
        with PeakRSS() as peak:
            fn()
        extra = peak.extra
    return [], extra


def run_case(args, N: int, V: int, mode: str, busy: int) -> list[dict]:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator(device="cpu").manual_seed(0)
    zp = (3 * torch.randn(N, V, generator=g)).to(device, dtype)
    zq = (zp.float() + torch.randn(N, V, generator=g).to(device)).to(dtype)
    tokens = torch.randint(0, V, (N,), generator=g).to(device)
    fns = arms(args.backends, mode, zp, zq, tokens)
    extra = {name: measure(fn, device, args.warmup, 1)[1] for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.reps):  # interleaved: each repetition runs every arm once
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    item = zp.element_size()
    moved = 2 * N * V * item if mode == "fwd" else (4 * N * V + N * V) * item
    ref_s = statistics.median(times["reference"])
    mc_s = min(statistics.median(times["mc_min_eager"]), statistics.median(times["mc_min_compiled"]))
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else ""
    rows = []
    for name in fns:
        t = statistics.median(times[name])
        gbps = moved / t / 1e9
        row = {
            **environment(),
            "benchmark": "token_kl",
            "config": f"{mode} N={N} V={V} {args.dtype} threads={torch.get_num_threads()} reps={args.reps} "
            f"busy={busy}",
            "baseline": "authors' reference",
            "baseline_s": f"{ref_s:.4f}",
            "candidate": name,
            "candidate_s": f"{t:.4f}",
            "ratio": f"{ref_s / t:.2f}",  # speed-up over the reference (> 1: faster)
            "extra_peak_mb": f"{extra[name] / 2**20:.1f}",
            "mem_ratio": f"{extra[name] / max(extra['reference'], 1):.3f}",
            "gb_per_s": f"{gbps:.1f}",
            "peak_share": f"{gbps / args.peak_gbps:.2f}" if args.peak_gbps else "",
            "mc_min_s": f"{mc_s:.4f}",
            "vs_mc_min": f"{t / mc_s:.2f}",  # candidate time over the MC minimum's (1.0: RB costs nothing)
            "load_after": load,  # 1-minute load average at the end of the case (busy jobs included)
        }
        rows.append(row)
        print(
            f"busy={busy} {mode:8s} N={N:5d} V={V:6d} {name:15s} median {t * 1e3:9.1f} ms  x{ref_s / t:5.2f} vs ref  "
            f"{t / mc_s:5.2f}x MC-min  extra peak {extra[name] / 2**20:8.1f} MiB ({row['mem_ratio']} of ref)  "
            f"{gbps:6.1f} GB/s load {load}"
            + (f" ({row['peak_share']} of peak)" if args.peak_gbps else ""),
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, nargs="+", default=[2048], help="rows (real positions)")
    p.add_argument("--V", type=int, nargs="+", default=[50257, 151936], help="vocabulary sizes")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", nargs="+", default=None, help="default: chunked compiled (+ triton on CUDA)")
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--peak-gbps", type=float, default=0.0, help="device peak bandwidth (H100 SXM: 3350)")
    p.add_argument("--busy", type=int, nargs="+", default=[0], help="other 2-thread torch jobs to run meanwhile; "
                   "several values: every case at each")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="N=512, V=50257, 3 reps")
    p.add_argument("--no-csv", action="store_true", help="print only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.backends is None:
        args.backends = ["chunked", "compiled"] + (["triton"] if args.device == "cuda" else [])
    if args.quick:
        args.N, args.V, args.reps = [512], [50257], 3
    for busy in args.busy:
        with BusyMachine(busy):
            for N in args.N:
                for V in args.V:
                    for mode in args.modes:
                        for row in run_case(args, N, V, mode, busy):
                            if not args.no_csv:
                                append_row(row)


if __name__ == "__main__":
    main()
