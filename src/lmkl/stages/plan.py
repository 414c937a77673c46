"""The Snakemake plan: `lmkl config sweep profile=P [overrides]` prints it as JSON (what the Snakefile reads).

The Hydra profile is the one source of truth for the sweep: the Snakefile turns its `--config` keys
into Hydra overrides (`snakemake_overrides`), composes conf/sweep.yaml with them (`plan`), and builds
the DAG from the result. An unknown profile, an unknown key or a bad value raises ConfigError here,
while the Snakefile is parsed — before any job starts.

    snakemake --cores all --config profile=paper 'seeds=[0,1,2]' 'betas=[0.05,0.1]'
    lmkl config sweep profile=paper 'sweep.seeds=[0,1,2]'        # the same plan, printed
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lmkl.stages.config import ConfigError, conf_dir, load, to_dict
from lmkl.stages.paths import format_beta
from lmkl.stages.pipeline_config import (
    SCHEMAS,
    PipelineConfig,
    default_gradient_run,
    profile_paths,
    sweep_runs,
)

# --config keys of the Snakefile -> Hydra keys (lists are passed as Hydra lists)
CONFIG_KEYS: dict[str, str] = {
    "estimators": "sweep.estimators",
    "betas": "sweep.betas",
    "seeds": "sweep.seeds",
    "sample_sizes": "variance.sample_sizes",
    "repetitions": "variance.repetitions",
    "prompts": "variance.prompts",
}
# --config keys passed to every stage as they are: the scale group and the device
SHARED_KEYS: dict[str, str] = {"scale": "a scale name (conf/scale: full, smoke)", "device": "auto, cpu, cuda or cuda:<i>"}
# stages whose configs compose the profile; `<stage>_overrides` in --config adds Hydra overrides to one
PIPELINE_STAGES = ("download", "pretrain", "train", "evaluate", "variance", "gradient_variance", "aggregate", "figures", "report")

def _hydra_value(v: Any) -> str:
    """A Python value as Hydra override text (JSON is a subset of Hydra's grammar for these types)."""
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    return json.dumps(v)


STUDY_STAGES = ("variance", "gradient_variance", "aggregate", "figures", "report")


def snakemake_overrides(config: dict[str, Any]) -> dict[str, list[str]]:
    """Hydra overrides for every stage (and for the plan, key "plan") from the Snakefile's `config`.

    Keys: profile; scale and device (SHARED_KEYS); the sweep and study lists of CONFIG_KEYS;
    `overrides` (raw Hydra overrides for every stage); `<stage>_overrides` (raw Hydra overrides for
    one stage). Anything else is refused. Every stage gets profile=P, scale, device and `overrides`; the sweep/study lists go to the plan and to the study
    stages (whose configs declare those keys), not to download/pretrain/train/evaluate, which get
    their run from estimator=/beta=/seed=.
    """
    known = {"profile", *SHARED_KEYS, "overrides", *CONFIG_KEYS, *(f"{s}_overrides" for s in PIPELINE_STAGES)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"--config {unknown[0]}: unknown key; expected one of {sorted(known)}")
    profile = config.get("profile", "tiny")
    if not isinstance(profile, str):
        raise ConfigError(f"--config profile: expected a profile name, got {profile!r}")
    lists = [f"{hydra_key}={_hydra_value(config[key])}" for key, hydra_key in CONFIG_KEYS.items() if key in config]

    def as_list(key: str) -> list[str]:
        v = config.get(key, [])
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"--config {key}: expected a list of Hydra overrides like ['train.steps=3'], got {v!r}")
        return list(v)

    shared = []
    for key in SHARED_KEYS:
        if key in config:
            if not isinstance(config[key], str):
                raise ConfigError(f"--config {key}: expected {SHARED_KEYS[key]}, got {config[key]!r}")
            shared.append(f"{key}={config[key]}")
    common = [f"profile={profile}", *shared, *as_list("overrides")]
    out = {"plan": [*common, *lists]}
    for s in PIPELINE_STAGES:
        out[s] = [*common, *(lists if s in STUDY_STAGES else []), *as_list(f"{s}_overrides")]
    return out


def plan(overrides: list[str]) -> dict[str, Any]:
    """The validated plan of the pipeline for `overrides` (profile=..., sweep.*=..., ...)."""
    cfg = load("sweep", overrides, PipelineConfig)
    paths = profile_paths(cfg)
    runs = [{"name": name, "estimator": e, "beta": format_beta(b), "seed": int(s)} for name, e, b, s in sweep_runs(cfg)]
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep: duplicate runs {sorted({n for n in names if names.count(n) > 1})}")
    grad_run = default_gradient_run(cfg)
    if grad_run not in names:
        raise ConfigError(f"gradient_variance.policy_run: expected one of the sweep's runs {names}, got {grad_run!r}")
    return {
        "profile": cfg.profile.name,
        "results": str(paths.root),
        "figures": str(paths.figures),
        "pretrain": cfg.model.source == "pretrain",
        "reward_dir": cfg.reward.kind == "classifier",
        "estimators": list(cfg.sweep.estimators),
        "betas": [format_beta(b) for b in cfg.sweep.betas],
        "seeds": [int(s) for s in cfg.sweep.seeds],
        "runs": runs,
        "gradient_points": ["reference", grad_run],
        "overrides": list(overrides),
        "config": to_dict(cfg),
    }


def check_stage(stage: str, overrides: list[str]) -> None:
    """Compose `conf/<stage>.yaml` with `overrides` and validate it against the stage's schema
    (unknown keys, types, values). Raises ConfigError naming the key."""
    if stage not in SCHEMAS or not (conf_dir() / f"{stage}.yaml").is_file():
        raise ConfigError(f"{stage}: no primary config conf/{stage}.yaml (is the stage installed?)")
    load(stage, overrides, SCHEMAS[stage])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: lmkl config sweep [profile=P] [hydra overrides ...]   (prints the pipeline plan as JSON)")
        return 0
    what, overrides = argv[0], argv[1:]
    if what != "sweep":
        print(f"lmkl config: unknown subcommand {what!r}; expected 'sweep'", file=sys.stderr)
        return 2
    try:
        print(json.dumps(plan(overrides), indent=2))
    except ConfigError as e:
        print(f"lmkl config sweep: invalid configuration: {e}", file=sys.stderr)
        return 2
    return 0
