"""`lmkl estimate`: KL(p‖q) between two causal LMs by every estimator, from one set of samples.

p and q are folders saved with `save_pretrained` or hub ids, resolved through the hub cache
(lmkl.assets.hub: with HF_HUB_OFFLINE=1 only the cache is read; a missing one is named with its
`hf download` command).

For each prompt, N responses are sampled from p (temperature τ, KV cache, seeded), both models score
them in one teacher-forced pass each, and every estimator in `lmkl.kl.ESTIMATORS` is computed from
the same per-token statistics. Output: a table on stdout, a progress bar on stderr, and optionally
a JSON file (written atomically). Exit status 2 on bad input, with a one-line message.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from lmkl.models.device import DEVICE_HELP, resolve_device

DTYPES = ("float32", "bfloat16", "float16", "float64")
POOLING_HELP = (
    "The pooled estimate is the mean over prompts of the per-prompt means, an unbiased estimate of "
    "(1/P) Σ_i KL(p(·|x_i) ‖ q(·|x_i)) with the P prompts taken as fixed; its standard error is "
    "sqrt(Σ_i se_i²)/P from the per-prompt standard errors se_i. With τ ≠ 1 both models are tempered "
    "by τ; responses cut at --max-new-tokens count their first T tokens only (the KL between the "
    "length-capped processes). rb_cv and cv_opt fit each prompt's coefficient on the other prompts' "
    "samples (exactly unbiased); with fewer than 32 such samples they are rb and mc."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmkl estimate",
        description="Estimate KL(p‖q) between two local causal LMs with every estimator, from the same samples of p.",
        epilog=POOLING_HELP,
    )
    parser.add_argument("--p", required=True, help="p, the sampling model: a folder (save_pretrained) or a hub id "
                        "(through the hub cache; offline with HF_HUB_OFFLINE=1)")
    parser.add_argument("--q", required=True, help="q, the reference model: a folder or a hub id, as --p")
    parser.add_argument("--prompts", required=True, type=Path, help="text file, one prompt per line (blank lines skipped)")
    parser.add_argument("--samples", required=True, type=_positive_int, help="responses per prompt, N ≥ 2")
    parser.add_argument("--max-new-tokens", required=True, type=_positive_int, help="length cap T of a response")
    parser.add_argument("--temperature", type=_positive_float, default=1.0, help="τ for both models (default 1.0)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="sequences per forward pass (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed; same seed → same numbers (default 0)")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default auto)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="dtype the models run in (default float32; statistics accumulate in float32 or more)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here (atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def read_prompts(path: Path) -> list[str]:
    """Prompts one per line, without their line ending; blank lines are skipped."""
    if not path.is_file():
        raise ValueError(f"prompts file not found: {path}")
    prompts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompts file {path} has no prompts (it is empty or holds only blank lines)")
    return prompts


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage and the error
        return int(e.code or 0)
    if args.samples < 2:
        parser.print_usage(sys.stderr)
        print("lmkl estimate: error: --samples: at least 2 per prompt (a standard error needs two)", file=sys.stderr)
        return 2
    from lmkl.assets.errors import AssetError

    try:
        result = run(args)
    except (ValueError, AssetError) as e:  # bad input: models, devices, vocabularies, prompts, NaN logits; no traceback
        print(f"lmkl estimate: error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.out is not None:
        write_json(args.out, result)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> dict:
    """Sample, score and estimate; returns the JSON-ready result (see `write_json`)."""
    from tqdm import tqdm

    from lmkl.assets.hub import model_asset
    from lmkl.kl import ESTIMATORS, UNBIASED, pool_over_prompts
    from lmkl.models import ModelPair, quiet_progress_bars, sample_and_score
    from lmkl.models.pooling import estimate_per_prompt

    quiet_progress_bars()  # one bar (ours), not one per weight file
    prompts = read_prompts(args.prompts)
    device = resolve_device(args.device, "--device")
    p_dir, q_dir = model_asset(args.p, key="--p"), model_asset(args.q, key="--q")
    pair = ModelPair.load(p_dir, q_dir, device=device, dtype=getattr(torch, args.dtype))
    torch.manual_seed(args.seed)  # nothing else should draw, but a stray draw stays reproducible
    generator = torch.Generator(device=device).manual_seed(args.seed)
    bar = tqdm(total=len(prompts) * args.samples, desc="sequences", unit="seq", file=sys.stderr, disable=args.no_progress)
    out = sample_and_score(pair, prompts, args.samples, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           batch_size=args.batch_size, generator=generator, device="cpu", on_batch=bar.update)
    bar.close()
    timing = {"sampling_s": out.sampling_s, "scoring_s": out.scoring_s}

    t0 = time.perf_counter()
    stats, index, ended_all, length_all = out.stats, out.prompt_index, out.ended, out.lengths
    names = list(ESTIMATORS)
    per_prompt = estimate_per_prompt(stats, index, len(prompts), names)
    pooled = {name: pool_over_prompts([pp[name] for pp in per_prompt]) for name in names}
    timing["estimation_s"] = time.perf_counter() - t0

    return {
        "estimators": {name: _clean(e.as_dict()) | {"unbiased": name in UNBIASED} for name, e in pooled.items()},
        "per_prompt": [
            {
                "prompt": prompts[i],
                "n": int((index == i).sum()),
                "frac_ended": float(ended_all[index == i].float().mean()),
                "mean_length": float(length_all[index == i].float().mean()),
                "estimators": {name: _clean(e.as_dict()) for name, e in pp.items()},
            }
            for i, pp in enumerate(per_prompt)
        ],
        "config": {
            "p": str(args.p), "q": str(args.q), "p_dir": str(p_dir), "q_dir": str(q_dir),
            "prompts": str(args.prompts), "n_prompts": len(prompts), "dtype": args.dtype,
            "samples": args.samples, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
            "top_k": None, "top_p": None, "batch_size": args.batch_size, "seed": args.seed,
            "device": str(device), "vocab_size": pair.vocab_size,
            "pooling": "mean over prompts of per-prompt means; stderr = sqrt(sum se_i^2) / P",
            "torch": torch.__version__,
        },
        "timing": timing,
    }


def _clean(d: dict) -> dict:
    """Non-finite floats become None: strict JSON has no NaN/Infinity."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def format_table(result: dict) -> str:
    """The pooled estimates as a fixed-width table (biased estimators marked)."""
    cfg = result["config"]
    head = (
        f"KL(p‖q), {cfg['n_prompts']} prompt(s) × {cfg['samples']} samples, ≤ {cfg['max_new_tokens']} tokens, "
        f"τ = {cfg['temperature']:g} (mean over prompts of per-prompt means)"
    )
    rows = [head, f"{'estimator':<10} {'estimate':>11} {'stderr':>10} {'95% CI':>25} {'share < 0':>10}"]

    def fmt(x: float | None) -> str:
        return "nan" if x is None else f"{x:.5g}"

    for name, e in result["estimators"].items():
        ci = f"[{fmt(e['ci_low'])}, {fmt(e['ci_high'])}]"
        label = name if e["unbiased"] else f"{name}*"
        rows.append(f"{label:<10} {fmt(e['mean']):>11} {fmt(e['stderr']):>10} {ci:>25} {e['frac_negative']:>10.1%}")
    rows.append("* biased; shown for comparison")
    return "\n".join(rows)


def write_json(path: Path, result: dict) -> None:
    from lmkl.atomic import atomic_write_json

    atomic_write_json(path, result)


if __name__ == "__main__":
    sys.exit(main())
