"""When does `compiled` pay for its compilation? The crossovers behind `auto_cpu.COMPILE_AFTER_S` (forwards)
and `auto_cpu.COMPILE_AFTER_TRAIN_S` (training).

    .venv/bin/python benchmarks/auto_crossover.py [--N 512 --V 50257 --threads 2 --reps 5]

Measures, in one process with a fresh (empty) Inductor cache, so that the compile time is the cold
one a new machine pays:
  C        compile time: the first `compiled` forward+backward minus a steady-state one (the forward
           graph and the backward graph, float32);
  t_c, t_k per-call forward time of `chunked` and `compiled`; T_c, T_k the same for forward+backward
           (kl_surrogate rb_causal, backward w.r.t. logits_p).
`auto` counts forward seconds spent in `chunked`. By the ski-rental rule it switches once the time
already spent, if spent once more, would save C: S* = C / (1 − t_k/t_c) forward seconds when only
forwards run (evaluation, studies), and S* = C / (1 − T_k/T_c) · t_c/T_c forward seconds in
training (each forward comes with a backward, which the counter does not see).
One CSV row per quantity goes to benchmarks/results.csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=512, help="rows (real positions)")
    p.add_argument("--V", type=int, default=50257, help="vocabulary size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-csv", action="store_true")
    args = p.parse_args(argv)
    # A cold Inductor cache, before torch is imported: the compile time a fresh machine pays.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lmkl-inductor-")
    import torch

    from common import append_row, environment
    from lmkl.kl import kl_surrogate
    from lmkl.kl.backends import BACKENDS

    torch.set_num_threads(args.threads)
    N, V = args.N, args.V
    g = torch.Generator().manual_seed(0)
    zp = 3 * torch.randn(N, V, generator=g)
    zq = zp + torch.randn(N, V, generator=g)
    tokens = torch.randint(0, V, (N,), generator=g)
    mask = torch.ones(1, N, dtype=torch.bool)

    def fwd(name):
        return lambda: BACKENDS[name](zp, zq, tokens)

    def train(name):
        def run():
            x = zp.detach().requires_grad_()
            kl_surrogate(x.view(1, N, V), zq.view(1, N, V), tokens.view(1, N), mask, backend=name).sum().backward()

        return run

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    first = timed(train("compiled"))  # compiles the forward and the backward graphs
    arms = {"t_c": fwd("chunked"), "t_k": fwd("compiled"), "T_c": train("chunked"), "T_k": train("compiled")}
    for fn in arms.values():
        fn()
    times = {k: [] for k in arms}
    for _ in range(args.reps):  # interleaved, so that other load hits every arm alike
        for k, fn in arms.items():
            times[k].append(timed(fn))
    t = {k: statistics.median(v) for k, v in times.items()}
    C = first - t["T_k"]
    gain_fwd, gain_train = 1 - t["t_k"] / t["t_c"], 1 - t["T_k"] / t["T_c"]
    s_fwd = C / gain_fwd if gain_fwd > 0 else float("inf")
    s_train = C / gain_train * t["t_c"] / t["T_c"] if gain_train > 0 else float("inf")
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"N={N} V={V} threads={args.threads} load {load}\n"
        f"  compile time C = {C:.1f} s (first compiled fwd+bwd {first:.1f} s)\n"
        f"  forward:     chunked {t['t_c'] * 1e3:.0f} ms, compiled {t['t_k'] * 1e3:.0f} ms (gain {gain_fwd:.0%})\n"
        f"  fwd+bwd:     chunked {t['T_c'] * 1e3:.0f} ms, compiled {t['T_k'] * 1e3:.0f} ms (gain {gain_train:.0%})\n"
        f"  crossover S* = {s_fwd:.0f} forward-seconds (forwards only), {s_train:.0f} (training)"
    )
    if not args.no_csv:
        config = f"N={N} V={V} float32 threads={args.threads} reps={args.reps} cold cache"
        for name, value in [("compile_s", C), ("crossover_fwd_s", s_fwd), ("crossover_train_s", s_train)]:
            append_row({**environment(), "benchmark": "auto_crossover", "config": config,
                        "candidate": name, "candidate_s": f"{value:.2f}"})  # fmt: skip


if __name__ == "__main__":
    main()
