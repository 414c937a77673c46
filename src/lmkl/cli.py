"""`lmkl <command> ...`: a thin shell over the stages and the library.

Two kinds of commands:
- pipeline stages (`lmkl download profile=tiny`, `lmkl train estimator=rb beta=0.1 ...`) take Hydra
  overrides and are listed in STAGES (module path; each module has `main(overrides: list[str]) -> int`);
- tools with their own flags (`lmkl estimate --p DIR --q DIR ...`, `lmkl demo`) are listed in TOOLS
  (module path; each module has `main(argv: list[str]) -> int`).
Modules are imported only when their command runs, so `lmkl --help` is instant.
"""

from __future__ import annotations

import importlib
import sys

STAGES: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "download": ("lmkl.stages.download", "build/fetch the profile's assets: prompts, tokenizer or policy, reward model"),
    "pretrain": ("lmkl.stages.pretrain", "pretrain the tiny profile's GPT-2 on the UCI sentences (tiny only)"),
    "config": ("lmkl.stages.plan", "`config sweep profile=P ...`: the validated pipeline plan as JSON"),
    "train": ("lmkl.stages.train", "one RLOO run (estimator=mc|rb beta=B seed=S): metrics, checkpoints, model; resumable"),
    "evaluate": ("lmkl.stages.evaluate", "a trained run on held-out prompts: reward and KL by every estimator → eval.json"),
    "variance": ("lmkl.stages.variance", "variance of every KL estimator vs M for a trained policy (or exact toys)"),
    "gradient_variance": ("lmkl.stages.gradient_variance", "variance of the ∇KL estimate of every surrogate form"),
    "aggregate": ("lmkl.stages.aggregate", "tidy tables of a profile's runs and studies"),
    "figures": ("lmkl.stages.figures", "the paper's figures (and ours) from the tables"),
    "report": ("lmkl.stages.report", "each claim of the paper decided with a 95 % interval → figures/P/claims.md"),
}

TOOLS: dict[str, tuple[str, str]] = {
    "demo": ("lmkl.demo", "every estimator on exact toy model pairs (incl. the counterexample)"),
    "estimate": ("lmkl.commands.estimate", "KL(p‖q) between two local LMs by every estimator, same samples"),
}


def _usage() -> str:
    lines = ["usage: lmkl <command> [args]", "", "pipeline stages (Hydra overrides, e.g. profile=tiny):"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in sorted(STAGES.items())]
    lines += ["", "tools:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in sorted(TOOLS.items())]
    lines += ["", "`lmkl <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    table = STAGES if name in STAGES else TOOLS if name in TOOLS else None
    if table is None:
        print(f"lmkl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(table[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
