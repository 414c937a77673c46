"""The pipeline through a real SLURM scheduler: a one-node cluster on localhost (Debian's slurm-wlm
and munge, recipe in shared/reference/slurm-local.md), driven by profiles/slurm with --executor slurm.

The cluster is private to the test: its slurm.conf, state, spool and logs live in a temporary folder
(SLURM_CONF points the client commands at it), on ports other than SLURM's defaults, so a machine's
own SLURM is neither read nor disturbed. The daemons are started in the foreground by this test and
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
    conf = root / "slurm.conf"
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
    "train_overrides": ["train.steps=2", "train.num_prompts=2", "train.max_new_tokens=8", "train.checkpoint_every=1"],
    "evaluate_overrides": ["evaluate.num_prompts=4", "evaluate.max_new_tokens=8"],
    "variance_overrides": [
        "variance.ground_truth_samples=8", "variance.max_new_tokens=8", "variance.oracle_toys=1", "variance.oracle_crossfit_m=2",
    ],
    "gradient_variance_overrides": [
        "gradient_variance.prompts=2", "gradient_variance.repetitions=2", "gradient_variance.sample_sizes=[1,2]",
        "gradient_variance.max_new_tokens=8", "gradient_variance.exact_toys=1",
    ],
}


def snakemake_slurm_command(workdir: Path, extra_config: dict, targets: list[str]) -> list[str]:
    config = {**MICRO, "overrides": MICRO_OVERRIDES, **extra_config}
    return [
        str(SNAKEMAKE), *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(REPO / "profiles" / "slurm"),
        # the local cluster: no accounting (squeue for status), no GPUs, one small partition
        "--slurm-status-command", "squeue", "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "2",
        "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=30", "cpus_per_task=1",
        "--set-resources", *(f"{r}:gpu=0" for r in ("train", "evaluate", "variance", "gradient_variance")),
        "--set-threads", *(f"{r}=1" for r in ("train", "evaluate", "variance", "gradient_variance", "pretrain")),
        "--latency-wait", "5", "--jobs", "4",
        "--config", *(f"{k}={json.dumps(v)}" for k, v in config.items()),  # last: it takes every word after it
    ]


@pytest.mark.slurm
@pytest.mark.slow
def test_exact_studies_through_slurm(slurm_cluster, tmp_path):
    """The exact-oracle jobs of the DAG (no assets needed) run as SLURM jobs and write their tables."""
    targets = ["results/tiny/variance/exact/oracle.csv", "results/tiny/gradient_variance/exact/oracle.csv"]
    cmd = snakemake_slurm_command(tmp_path, {}, targets)
    proc = subprocess.run(cmd, env=slurm_cluster, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "slurm" in proc.stderr.lower()  # the executor was the SLURM one
    values = pd.read_csv(tmp_path / targets[0])
    ce = values[values.toy == "counterexample"].set_index("estimator")
    # exact numbers (paper-digest §3.2): Var(mc) = 3.316 < Var(rb) = 5.070 on the counterexample
    assert ce.loc["mc", "var"] == pytest.approx(3.316, abs=1e-3)
    assert ce.loc["rb", "var"] == pytest.approx(5.070, abs=1e-3)
    grads = pd.read_csv(tmp_path / targets[1])
    assert set(grads["form"]) == {"mc_seq", "mc_causal", "rb_paper", "rb_causal", "k3_loss"}
    assert (tmp_path / "results/tiny/logs/variance/exact.log").is_file()
