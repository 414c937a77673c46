"""Helpers shared by the benchmark scripts: machine/version/commit fields, peak memory, CSV rows.

    row = {**environment(), "benchmark": "token_kl", "config": "...", ...}
    append_row(row)          # one line of benchmarks/results.csv

`append_row` keeps the file's existing header and column order; a key the header lacks is added as
a new last column (older rows then simply have it empty), so scripts can report extra measurements
without breaking each other's rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("results.csv")


def commit() -> str:
    """Short hash of HEAD, with "+dirty" when the working tree has uncommitted changes to tracked files."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root, capture_output=True).returncode
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    """CPU model (or GPU name when CUDA is used) and core count, e.g. "Intel(R) Xeon(R) Processor x2"."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} x{os.cpu_count()}"


def environment() -> dict[str, str]:
    """The columns every row carries: date, machine, versions, commit, load."""
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:
        tf_version = ""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": tf_version,
        "commit": commit(),
        # Other processes share this machine; a high load explains a noisy row.
        "load_avg_1m": f"{os.getloadavg()[0]:.1f}",
    }


def append_row(row: dict[str, object], path: Path = RESULTS) -> None:
    """Append `row` to the CSV at `path`, extending its header by any new keys (as last columns)."""
    header: list[str] = []
    rows: list[list[str]] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            rows = list(reader)
    new_keys = [k for k in row if k not in header]
    if new_keys:  # rewrite once with the wider header; existing rows keep their values
        header = header + new_keys
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
    with path.open("a", newline="") as f:
        csv.writer(f).writerow([row.get(k, "") for k in header])


class PeakRSS:
    """Peak resident memory above the level at entry, in bytes (Linux; CPU tensors).

    tracemalloc does not see torch's allocations; the kernel's high-water mark does. On entry the
    high-water mark is reset (writing 5 to /proc/self/clear_refs) and the current RSS noted; on exit
    `extra` = VmHWM − that RSS. torch frees large CPU tensors straight back to the OS (they are
    mmap-ed), so successive measurements in one process do not hide behind a cached pool.
    """

    def __enter__(self) -> PeakRSS:
        Path("/proc/self/clear_refs").write_text("5")
        self.start = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        self.extra = max(0, _status_kib("VmHWM") * 1024 - self.start)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
