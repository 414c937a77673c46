"""The pipeline's config: each stage's schema, assembled from the sections of `lmkl.stages.schema` and
registered with Hydra's ConfigStore as `schema/<stage>`, and what follows from a config alone (the
profile's paths, the sweep's runs, the gradient study's run, a study's target).

Every primary config (conf/<stage>.yaml) starts its defaults list with `schema/<stage>`, so the
dataclasses are the defaults: the YAML files hold no option values of their own, only the shared
defaults list (conf/base.yaml: the profile) that profiles and groups override. Composition is typed
(an unknown key or a wrong type fails in Hydra); instantiation (`lmkl.stages.config.validate`) runs
each section's value checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from lmkl.models.device import DEVICE_HELP, check_device_spec
from lmkl.options import option
from lmkl.stages.config import ConfigError, config_error
from lmkl.stages.paths import ProfilePaths, parse_run_name, run_name
from lmkl.stages.schema import (
    DataSection,
    DownloadSection,
    EvaluateSection,
    FiguresSection,
    GradientVarianceSection,
    ModelSection,
    PretrainSection,
    ProfileSection,
    ReportSection,
    RewardSection,
    RunSection,
    SweepSection,
    TrainSection,
    VarianceSection,
    WandbSection,
)


@dataclass
class PipelineConfig:
    """Every section a profile sets (conf/sweep.yaml: the pipeline plan); each stage's schema extends it."""

    profile: ProfileSection = field(default_factory=ProfileSection)
    wandb: WandbSection = field(default_factory=WandbSection)
    sweep: SweepSection = field(default_factory=SweepSection)
    model: ModelSection = field(default_factory=ModelSection)
    reward: RewardSection = field(default_factory=RewardSection)
    data: DataSection = field(default_factory=DataSection)
    variance: VarianceSection = field(default_factory=VarianceSection)
    gradient_variance: GradientVarianceSection = field(default_factory=GradientVarianceSection)
    figures: FiguresSection = field(default_factory=FiguresSection)
    train: TrainSection = field(default_factory=TrainSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    device: str = option("auto", f"where every stage runs its models (pretrain excepted: CPU by design): {DEVICE_HELP}")

    def __post_init__(self) -> None:
        try:
            check_device_spec(self.device, "device")
        except ValueError as e:
            raise ConfigError(str(e)) from None


def profile_paths(cfg: PipelineConfig) -> ProfilePaths:
    """Where the profile's outputs live (results/<name>/, figures/<name>/)."""
    return ProfilePaths(cfg.profile.name, Path(cfg.profile.results_root), Path(cfg.profile.figures_root))


def sweep_runs(cfg: PipelineConfig) -> list[tuple[str, str, float, int]]:
    """(run name, estimator, beta, seed) of every run of the sweep, estimator-major."""
    s = cfg.sweep
    return [(run_name(e, b, seed), e, b, seed) for e in s.estimators for b in s.betas for seed in s.seeds]


def default_gradient_run(cfg: PipelineConfig) -> str:
    """The trained run the gradient study uses unless gradient_variance.policy_run names one."""
    if cfg.gradient_variance.policy_run:
        return cfg.gradient_variance.policy_run
    est = "rb" if "rb" in cfg.sweep.estimators else cfg.sweep.estimators[0]
    return run_name(est, min(cfg.sweep.betas), cfg.sweep.seeds[0])


@dataclass
class DownloadConfig(PipelineConfig):
    download: DownloadSection = field(default_factory=DownloadSection)


@dataclass
class PretrainConfig(PipelineConfig):
    pretrain: PretrainSection = field(default_factory=PretrainSection)


@dataclass
class RunConfig(RunSection, PipelineConfig):
    """The profile's sections plus one run (`lmkl train` and `lmkl evaluate`): estimator, beta, seed."""

    def __post_init__(self) -> None:
        RunSection.__post_init__(self)
        PipelineConfig.__post_init__(self)


def check_study_target(target: str, keywords: tuple[str, ...]) -> None:
    """A study's `target`: one of `keywords` (e.g. exact, reference) or a run name; else ConfigError."""
    if target in keywords:
        return
    try:
        parse_run_name(target)
    except ValueError as e:
        expected = ", ".join(keywords) + ", or a run name like rb_beta0.1_seed0"
        raise config_error("target", expected, target) from e


@dataclass
class VarianceConfig(PipelineConfig):
    target: str = option(MISSING, "a run name (<estimator>_beta<beta>_seed<seed>): that policy vs the reference; "
                                  "exact: the exact study on lmkl.exact toys")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_study_target(self.target, ("exact",))


@dataclass
class GradientVarianceConfig(PipelineConfig):
    target: str = option(MISSING, "reference (p = q: a check of the machinery), a run name "
                                  "(<estimator>_beta<beta>_seed<seed>), or exact (lmkl.exact toys)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_study_target(self.target, ("reference", "exact"))


@dataclass
class ReportConfig(PipelineConfig):
    report: ReportSection = field(default_factory=ReportSection)


# stage (its primary config conf/<stage>.yaml) -> schema; `sweep` is the pipeline plan's config
SCHEMAS: dict[str, type] = {
    "download": DownloadConfig,
    "pretrain": PretrainConfig,
    "train": RunConfig,
    "evaluate": RunConfig,
    "variance": VarianceConfig,
    "gradient_variance": GradientVarianceConfig,
    "aggregate": PipelineConfig,
    "figures": PipelineConfig,
    "report": ReportConfig,
    "sweep": PipelineConfig,
}


def register_schemas() -> None:
    """Store every stage's schema as `schema/<stage>` (package _global_) in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    for stage, schema in SCHEMAS.items():
        store.store(group="schema", name=stage, node=schema, package="_global_")


register_schemas()
