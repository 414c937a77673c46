"""The pipeline through a real SLURM scheduler: a one-node cluster on localhost (Debian's slurm-wlm
and munge, recipe in shared/reference/slurm-local.md), driven by profiles/slurm with --executor slurm.

The cluster is private to the test: its state, spool and logs live in a temporary folder, on ports
other than SLURM's defaults. Its slurm.conf must be at the default /etc/slurm/slurm.conf: the `srun`
that Snakemake's job step runs inside each job finds no other (the executor strips SLURM_* variables,
SLURM_CONF included); a slurm.conf already there is moved aside and put back afterwards. The daemons are started in the foreground by this test and
stopped by their process ids when it ends. In CI (CI=true; .ci/run installs the packages) a missing
SLURM is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
PORTS = (16817, 16818)  # slurmctld, slurmd: not SLURM's defaults (6817/6818)
DAEMONS = ("munged", "slurmctld", "slurmd")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd runs jobs as their users)"
    absent = [d for d in DAEMONS if not (shutil.which(d) or Path(f"/usr/sbin/{d}").exists())]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install slurm-wlm munge; .ci/run does it)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4000


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int) -> str:
    return "\n".join([
        "ClusterName=lmkltest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={PORTS[0]}",
        f"SlurmdPort={PORTS[1]}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        f"SlurmctldLogFile={root}/slurmctld.log",
        f"SlurmdLogFile={root}/slurmd.log",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=True).stdout
        subprocess.run(["unmunge"], input=cred, capture_output=True, timeout=10, check=True)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM; yields the environment for sbatch/squeue (SLURM_CONF set)."""
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"SLURM test cannot run in CI: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool"):
        (root / d).mkdir()
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    conf = Path("/etc/slurm/slurm.conf")
    saved = root / "slurm.conf.saved"
    conf.parent.mkdir(parents=True, exist_ok=True)
    if conf.exists():
        shutil.move(conf, saved)
    conf.write_text(slurm_conf(root, host, cpus, max(1000, _memory_mb() - 1000)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    try:
        if not _munge_works():  # start munged only if no working one is there (the package makes the key)
            key = Path("/etc/munge/munge.key")
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            started.append(subprocess.Popen(["runuser", "-u", "munge", "--", _sbin("munged"), "-F"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(50):
                if _munge_works():
                    break
                time.sleep(0.1)
        started.append(subprocess.Popen([_sbin("slurmctld"), "-D", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        started.append(subprocess.Popen([_sbin("slurmd"), "-D", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 30
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if out.stdout.strip() in ("idle", "mix"):
                break
            time.sleep(0.5)
        else:
            logs = "".join((root / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log") if (root / f).exists())
            pytest.fail(f"the local SLURM node never became idle (sinfo: {out.stdout!r} {out.stderr!r})\n{logs}")
        yield env
    finally:
        for p in reversed(started):  # only the daemons this fixture started, by their process ids
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        conf.unlink(missing_ok=True)
        if saved.exists():
            shutil.move(saved, conf)


def test_sbatch_runs_a_job(slurm_cluster, tmp_path):
    """The cluster itself: a job submitted with sbatch runs and writes its output."""
    out = tmp_path / "hello.txt"
    subprocess.run(["sbatch", "--wait", "-o", str(out), "--wrap", "echo hello from $SLURM_JOB_ID"],
                   env=slurm_cluster, check=True, capture_output=True, timeout=60)
    assert out.read_text().startswith("hello from ")


# The micro configuration: one run of 2 updates, studies of a few samples (overrides of the tiny profile).
MICRO = {
    "profile": "tiny",
    "estimators": ["rb"],
    "betas": [0.1],
    "seeds": [0],
    "sample_sizes": [1, 2],
    "repetitions": 2,
    "prompts": 2,
}
MICRO_OVERRIDES = ["wandb.enabled=false"]  # every stage
STAGE_OVERRIDES = {
    "pretrain_overrides": ["pretrain.steps=20"],
    "train_overrides": [
        "train.steps=2", "train.num_prompts=2", "train.micro_batch_size=4", "train.max_new_tokens=8", "train.checkpoint_every=1",
    ],
    "evaluate_overrides": ["evaluate.num_prompts=4", "evaluate.max_new_tokens=8"],
    "variance_overrides": [
        "variance.ground_truth_samples=8", "variance.max_new_tokens=8", "variance.oracle_toys=1", "variance.oracle_crossfit_m=2",
    ],
    "gradient_variance_overrides": [
        "gradient_variance.prompts=2", "gradient_variance.repetitions=2", "gradient_variance.sample_sizes=[1,2]",
        "gradient_variance.max_new_tokens=8", "gradient_variance.exact_toys=1",
    ],
}


RULES = ("download", "pretrain", "train", "evaluate", "variance", "variance_exact", "gradient_variance",
         "gradient_variance_exact", "aggregate", "figures")
GPU_RULES = ("train", "evaluate", "variance", "gradient_variance")


def snakemake_slurm_command(workdir: Path, extra_config: dict, targets: list[str]) -> list[str]:
    config = {**MICRO, "overrides": MICRO_OVERRIDES, **extra_config}
    return [
        str(SNAKEMAKE), *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(REPO / "profiles" / "slurm"),
        # the local cluster: no accounting (squeue for status), no GPUs, one small partition
        "--slurm-status-command", "squeue", "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
        "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=30", "cpus_per_task=1",
        # the rules' own mem_mb (sized for the paper's models) and gpu=1 do not fit a small CI node
        "--set-resources", *(f"{r}:gpu=0" for r in GPU_RULES), *(f"{r}:mem_mb=1000" for r in RULES),
        "--set-threads", *(f"{r}=1" for r in ("train", "evaluate", "variance", "gradient_variance", "pretrain")),
        "--latency-wait", "5", "--jobs", "4",
        "--config", *(f"{k}={json.dumps(v)}" for k, v in config.items()),  # last: it takes every word after it
    ]


@pytest.mark.slurm
@pytest.mark.slow
def test_micro_pipeline_through_slurm(slurm_cluster, tmp_path):
    """The whole DAG (download → pretrain → train → evaluate → studies → aggregate → figures) on a micro
    configuration of the tiny profile, every job submitted to SLURM through profiles/slurm."""
    cmd = snakemake_slurm_command(tmp_path, STAGE_OVERRIDES, [])
    proc = subprocess.run(cmd, env=slurm_cluster, capture_output=True, text=True, timeout=1800)  # a hang guard: ~3 min on an idle 2-core machine, 13 min at load 13
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "SLURM jobid" in log  # jobs went through sbatch, not the local executor
    results, figs = tmp_path / "results" / "tiny", tmp_path / "figures" / "tiny"
    for name in ("variance", "training_curves", "pareto", "gradient_variance", "oracle"):
        assert (figs / f"{name}.png").stat().st_size > 1000 and (figs / f"{name}.md").is_file()
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert runs["run"].tolist() == ["rb_beta0.1_seed0"] and bool(runs["on_front"].iloc[0])
    metrics = pd.read_csv(results / "train" / "rb_beta0.1_seed0" / "metrics.csv")
    assert metrics["step"].tolist() == [1, 2]
    est = pd.read_parquet(results / "tables" / "variance.parquet")
    assert set(est["M"]) == {1, 2} and est["repetition"].nunique() == 2 and est["prompt"].nunique() == 2
    values = pd.read_csv(results / "tables" / "oracle_values.csv")
    ce = values[values.toy == "counterexample"].set_index("estimator")
    # exact (paper-digest §3.2): Var(mc) = 3.316 < Var(rb) = 5.070 on the counterexample
    assert ce.loc["mc", "var"] == pytest.approx(3.316, abs=1e-3) and ce.loc["rb", "var"] == pytest.approx(5.070, abs=1e-3)
    for rule_log in ("download.log", "train/rb_beta0.1_seed0.log", "variance/rb_beta0.1_seed0.log", "figures.log"):
        assert (results / "logs" / rule_log).is_file()
    for bench in ("download.tsv", "train/rb_beta0.1_seed0.tsv", "gradient_variance/reference.tsv", "figures.tsv"):
        # Snakemake's benchmark of the job (measured inside the SLURM job): header + one row with its seconds
        table = pd.read_csv(results / "benchmarks" / bench, sep="\t")
        assert len(table) == 1 and table["s"].iloc[0] > 0
    queue = subprocess.run(["squeue", "-h"], env=slurm_cluster, capture_output=True, text=True, check=True)
    assert queue.stdout.strip() == ""  # nothing left running
