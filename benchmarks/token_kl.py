"""Per-token KL backends against the authors' reference, in one run.

    .venv/bin/python benchmarks/token_kl.py [--N 2048 --V 50257 151936 --dtype float32 --threads 2]
    .venv/bin/python benchmarks/token_kl.py --quick          # N=512, V=50257, 3 reps: a smoke run

Reference (the authors' code, rycolab/kl-rb): log_softmax of both logits, exp, multiply, sum over the
vocabulary (plus the two gathers of the sampled token), differentiated by autograd. Candidates: the
`lmkl.kl` backends (chunked, compiled, triton on CUDA). Two modes per case:
  fwd      logp, logq, kl from logits [N, V] (no autograd);
  fwd+bwd  kl_surrogate(form="rb_causal") and .backward() w.r.t. logits_p (the training step's cost);
           the reference runs the same surrogate on its own statistics.
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
import statistics
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
        out.update({b: fwd(b) for b in backends})
    else:
        out = {"reference": ref_train}
        out.update({b: train(b) for b in backends})
    return out


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


def run_case(args, N: int, V: int, mode: str) -> list[dict]:
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
    rows = []
    for name in fns:
        t = statistics.median(times[name])
        gbps = moved / t / 1e9
        row = {
            **environment(),
            "benchmark": "token_kl",
            "config": f"{mode} N={N} V={V} {args.dtype} threads={torch.get_num_threads()} reps={args.reps}",
            "baseline": "authors' reference",
            "baseline_s": f"{ref_s:.4f}",
            "candidate": name,
            "candidate_s": f"{t:.4f}",
            "ratio": f"{ref_s / t:.2f}",  # speed-up over the reference (> 1: faster)
            "extra_peak_mb": f"{extra[name] / 2**20:.1f}",
            "mem_ratio": f"{extra[name] / max(extra['reference'], 1):.3f}",
            "gb_per_s": f"{gbps:.1f}",
            "peak_share": f"{gbps / args.peak_gbps:.2f}" if args.peak_gbps else "",
        }
        rows.append(row)
        print(
            f"{mode:8s} N={N:5d} V={V:6d} {name:10s} median {t * 1e3:9.1f} ms  x{ref_s / t:5.2f} vs ref  "
            f"extra peak {extra[name] / 2**20:8.1f} MiB ({row['mem_ratio']} of ref)  {gbps:6.1f} GB/s"
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
    p.add_argument("--quick", action="store_true", help="N=512, V=50257, 3 reps")
    p.add_argument("--no-csv", action="store_true", help="print only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.backends is None:
        args.backends = ["chunked", "compiled"] + (["triton"] if args.device == "cuda" else [])
    if args.quick:
        args.N, args.V, args.reps = [512], [50257], 3
    for N in args.N:
        for V in args.V:
            for mode in args.modes:
                for row in run_case(args, N, V, mode):
                    if not args.no_csv:
                        append_row(row)


if __name__ == "__main__":
    main()
