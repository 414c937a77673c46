"""Where every output of a profile lives. The Snakefile and the stages use these names only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The figures the figures stage draws (each in every figures.format + a caption <name>.md) and the
# tables the aggregate stage writes: the Snakefile, the stages and the report read these names.
FIGURES: tuple[str, ...] = ("variance", "training_curves", "pareto", "gradient_variance", "oracle")
TABLES: tuple[str, ...] = (
    "training.csv", "runs.csv", "pareto_share.csv", "variance.parquet", "variance_summary.csv",
    "variance_table.csv", "variance_truth.csv", "gradient_variance.csv", "gradient_repetitions.parquet",
    "oracle_values.csv", "oracle_gradients.csv",
)

_RUN = re.compile(r"^(?P<estimator>[a-z0-9_]+?)_beta(?P<beta>[0-9.eE+-]+)_seed(?P<seed>\d+)$")


def format_beta(beta: float) -> str:
    """Shortest faithful text for a KL coefficient in folder names: 0.1 -> '0.1', 1.0 -> '1'."""
    return f"{float(beta):g}"


def run_name(estimator: str, beta: float, seed: int) -> str:
    return f"{estimator}_beta{format_beta(beta)}_seed{int(seed)}"


def parse_run_name(name: str) -> tuple[str, float, int]:
    """Inverse of `run_name`: 'rb_beta0.1_seed0' -> ('rb', 0.1, 0)."""
    m = _RUN.match(name)
    if not m:
        raise ValueError(f"expected a run name <estimator>_beta<beta>_seed<seed>, got {name!r}")
    return m["estimator"], float(m["beta"]), int(m["seed"])


@dataclass(frozen=True)
class ProfilePaths:
    profile: str
    results_root: Path = Path("results")
    figures_root: Path = Path("figures")

    @property
    def root(self) -> Path:
        return Path(self.results_root) / self.profile

    # assets (download / pretrain)
    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def policy(self) -> Path:
        """The reference model, and the policy's initialisation (HF format)."""
        return self.assets / "policy"

    @property
    def reward(self) -> Path:
        return self.assets / "reward"

    @property
    def prompts_train(self) -> Path:
        return self.assets / "prompts" / "train.jsonl"

    @property
    def prompts_test(self) -> Path:
        return self.assets / "prompts" / "test.jsonl"

    @property
    def manifest(self) -> Path:
        return self.assets / "manifest.json"

    # training runs
    def run_dir(self, estimator: str, beta: float, seed: int) -> Path:
        return self.root / "train" / run_name(estimator, beta, seed)

    def metrics_csv(self, estimator: str, beta: float, seed: int) -> Path:
        return self.run_dir(estimator, beta, seed) / "metrics.csv"

    def eval_json(self, estimator: str, beta: float, seed: int) -> Path:
        return self.run_dir(estimator, beta, seed) / "eval.json"

    def final_model(self, estimator: str, beta: float, seed: int) -> Path:
        return self.run_dir(estimator, beta, seed) / "model"

    # studies, tables, figures
    @property
    def variance(self) -> Path:
        return self.root / "variance"

    @property
    def gradient_variance(self) -> Path:
        return self.root / "gradient_variance"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def figures(self) -> Path:
        return Path(self.figures_root) / self.profile
