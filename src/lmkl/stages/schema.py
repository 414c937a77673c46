"""Config sections shared by every stage (the stage modules add their own sections).

Each dataclass checks its values in `__post_init__` and raises ConfigError naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lmkl.kl import ESTIMATORS, SURROGATE_FORMS
from lmkl.rloo.config import TRAIN_ESTIMATORS
from lmkl.stages.config import ConfigError, config_error


@dataclass
class ProfileSection:
    """Which profile this is and where its outputs go: results/<name>/, figures/<name>/."""

    name: str = "tiny"
    results_root: str = "results"
    figures_root: str = "figures"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise config_error("profile.name", "a non-empty folder name", self.name)


@dataclass
class SweepSection:
    """The training sweep: one run per estimator × beta × seed (Snakemake reads these lists)."""

    estimators: list[str] = field(default_factory=lambda: ["mc", "rb"])
    betas: list[float] = field(default_factory=lambda: [0.05, 0.1])
    seeds: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        for e in self.estimators:
            if e not in TRAIN_ESTIMATORS:
                raise config_error("sweep.estimators", f"training estimators among {list(TRAIN_ESTIMATORS)}", e)
        for b in self.betas:
            if b < 0:
                raise config_error("sweep.betas", "values ≥ 0", b)
        if not (self.estimators and self.betas and self.seeds):
            raise config_error("sweep", "non-empty estimators, betas and seeds", "an empty list")


@dataclass
class WandbSection:
    """W&B logging: offline without credentials (see lmkl.tracking)."""

    enabled: bool = True
    project: str = "lmkl"


@dataclass
class RunSection:
    """The single run a train/evaluate stage works on (top-level keys estimator, beta, seed)."""

    estimator: str = "rb"
    beta: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.estimator not in TRAIN_ESTIMATORS:
            raise config_error("estimator", f"one of {list(TRAIN_ESTIMATORS)} for training", self.estimator)
        if self.beta < 0:
            raise config_error("beta", "a KL coefficient ≥ 0", self.beta)


VALUE_ESTIMATORS = sorted(ESTIMATORS)


# --- assets: the model, reward and data groups (conf/model, conf/reward, conf/data) -------------


@dataclass
class ModelSection:
    """The reference model (also the policy's initialisation), as the download/pretrain stages build it."""

    name: str = "tiny-gpt2"
    source: str = "pretrain"  # pretrain (tiny, built locally) | smollm2_wheel | hub
    hub_id: str | None = None  # for source=hub, e.g. lvwerra/gpt2-imdb (or a local folder holding a copy)
    revision: str | None = None  # for source=hub: a branch, tag or commit (None: the default branch)
    dtype: str = "float32"
    # GPT-2 architecture for source=pretrain
    vocab_size: int = 4096
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    n_positions: int = 128

    def __post_init__(self) -> None:
        if self.source not in ("pretrain", "smollm2_wheel", "hub"):
            raise config_error("model.source", "one of pretrain, smollm2_wheel, hub", self.source)
        if self.source == "hub" and not self.hub_id:
            raise config_error("model.hub_id", "a model id for source=hub", self.hub_id)
        if self.dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise config_error("model.dtype", "float32, bfloat16, float16 or float64", self.dtype)


@dataclass
class RewardSection:
    """The reward: VADER's compound score, or a sentiment classifier's positive-class logit."""

    kind: str = "vader"  # vader | classifier
    hub_id: str | None = None  # for kind=classifier, e.g. lvwerra/distilbert-imdb
    positive_label: str = "POSITIVE"
    batch_size: int = 64
    revision: str | None = None  # for kind=classifier: a branch, tag or commit of hub_id

    def __post_init__(self) -> None:
        if self.kind not in ("vader", "classifier"):
            raise config_error("reward.kind", "vader or classifier", self.kind)
        if self.kind == "classifier" and not self.hub_id:
            raise config_error("reward.hub_id", "a model id for kind=classifier", self.hub_id)
        if self.batch_size < 1:
            raise config_error("reward.batch_size", "≥ 1", self.batch_size)


@dataclass
class DataSection:
    """Where prompts come from and how they are cut: review prefixes of min_words..max_words."""

    source: str = "uci"  # uci (committed data/) | hf_imdb (datasets: stanfordnlp/imdb)
    hf_dataset: str = "stanfordnlp/imdb"  # or a local folder with train/test data files
    uci_sources: list[str] = field(default_factory=lambda: ["imdb"])  # for source=uci: which UCI files
    unit: str = "words"  # prefix length counted in words (whitespace) or tokens (the policy's tokenizer)
    min_chars: int = 200  # for source=hf_imdb: only reviews longer than this (TRL's sentiment example)
    min_words: int = 2  # shortest prefix, in `unit`s
    max_words: int = 8  # longest prefix, in `unit`s (inclusive)
    test_fraction: float = 0.2
    max_train_prompts: int | None = None
    max_test_prompts: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.source not in ("uci", "hf_imdb"):
            raise config_error("data.source", "uci or hf_imdb", self.source)
        if not 1 <= self.min_words <= self.max_words:
            raise config_error("data.min_words/max_words", "1 ≤ min_words ≤ max_words", (self.min_words, self.max_words))
        if not 0 < self.test_fraction < 1:
            raise config_error("data.test_fraction", "a fraction in (0, 1)", self.test_fraction)
        if self.unit not in ("words", "tokens"):
            raise config_error("data.unit", "words or tokens", self.unit)
        if self.source == "uci" and (not self.uci_sources or set(self.uci_sources) - {"imdb", "amazon", "yelp"}):
            raise config_error("data.uci_sources", "a non-empty subset of [imdb, amazon, yelp]", self.uci_sources)
        for key in ("max_train_prompts", "max_test_prompts"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise config_error(f"data.{key}", "≥ 1 or null", getattr(self, key))


# --- studies and figures (conf/variance.yaml, conf/gradient_variance.yaml, conf/figures.yaml) -----
# Profiles set these sections too, so every stage that composes a profile sees them.


def _check_sizes(key: str, sizes: list[int]) -> None:
    if not sizes or any(int(m) < 1 for m in sizes) or len(set(sizes)) != len(sizes):
        raise config_error(key, "a non-empty list of distinct sample sizes ≥ 1", sizes)


@dataclass
class VarianceSection:
    """The variance study (paper §5.2, protocol of paper-digest §5.2): for one policy vs the reference,
    `prompts` held-out prompts × `repetitions` × every M in `sample_sizes` × every estimator, all from
    one shared set of R·max(M) samples per prompt; ground truth = rb over `ground_truth_samples`
    further samples per prompt. The `oracle_*` keys size the exact study on lmkl.exact toys."""

    prompts: int = 8
    repetitions: int = 32
    sample_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    estimators: list[str] = field(default_factory=lambda: list(VALUE_ESTIMATORS))
    ground_truth_samples: int = 512
    max_new_tokens: int = 53
    temperature: float = 1.0
    micro_batch: int = 64
    seed: int = 0
    oracle_toys: int = 12
    oracle_crossfit_m: int = 4

    def __post_init__(self) -> None:
        for key in ("prompts", "repetitions", "ground_truth_samples", "max_new_tokens", "micro_batch", "oracle_toys"):
            if getattr(self, key) < 1:
                raise config_error(f"variance.{key}", "an integer ≥ 1", getattr(self, key))
        _check_sizes("variance.sample_sizes", self.sample_sizes)
        for e in self.estimators:
            if e not in VALUE_ESTIMATORS:
                raise config_error("variance.estimators", f"names among {VALUE_ESTIMATORS}", e)
        if "mc" not in self.estimators:  # the figures and tables report every estimator relative to mc
            raise config_error("variance.estimators", "a list that includes mc (results are relative to it)", self.estimators)
        if self.repetitions < 2:
            raise config_error("variance.repetitions", "≥ 2 (a standard deviation needs two estimates)", self.repetitions)
        if not self.temperature > 0:
            raise config_error("variance.temperature", "a temperature > 0", self.temperature)
        if self.oracle_crossfit_m < 2:
            raise config_error("variance.oracle_crossfit_m", "≥ 2 (cross-fitting needs other samples)", self.oracle_crossfit_m)


GRADIENT_FORMS = list(SURROGATE_FORMS)


@dataclass
class GradientVarianceSection:
    """The gradient-variance study (beyond the paper): `repetitions` independent estimates of ∇θ KL
    from M samples for each surrogate form, at the reference and at one trained policy.

    parameters: regular expressions on parameter names restricting θ (empty: every parameter);
    policy_run: the trained run to study (None: the first rb run of the sweep at its smallest beta).
    exact_toys: random lmkl.exact toys (plus the counterexample) with exact bias and variance."""

    prompts: int = 4
    repetitions: int = 16
    sample_sizes: list[int] = field(default_factory=lambda: [1, 4, 16])
    forms: list[str] = field(default_factory=lambda: list(GRADIENT_FORMS))
    parameters: list[str] = field(default_factory=list)
    policy_run: str | None = None
    max_new_tokens: int = 53
    temperature: float = 1.0
    seed: int = 0
    exact_toys: int = 8

    def __post_init__(self) -> None:
        for key in ("prompts", "repetitions", "max_new_tokens", "exact_toys"):
            if getattr(self, key) < 1:
                raise config_error(f"gradient_variance.{key}", "an integer ≥ 1", getattr(self, key))
        if self.repetitions < 2:
            raise config_error("gradient_variance.repetitions", "≥ 2 (a variance needs two estimates)", self.repetitions)
        _check_sizes("gradient_variance.sample_sizes", self.sample_sizes)
        for f in self.forms:
            if f not in GRADIENT_FORMS:
                raise config_error("gradient_variance.forms", f"forms among {GRADIENT_FORMS}", f)
        if "mc_seq" not in self.forms:  # the figure reports every form relative to mc_seq
            raise config_error("gradient_variance.forms", "a list that includes mc_seq (results are relative to it)", self.forms)
        if not self.temperature > 0:
            raise config_error("gradient_variance.temperature", "a temperature > 0", self.temperature)


@dataclass
class FiguresSection:
    """Figure output: formats written for every figure, resolution of raster formats."""

    formats: list[str] = field(default_factory=lambda: ["png", "pdf"])
    dpi: int = 150

    def __post_init__(self) -> None:
        for f in self.formats:
            if f not in ("png", "pdf", "svg"):
                raise config_error("figures.formats", "formats among ['png', 'pdf', 'svg']", f)
        if not self.formats:
            raise config_error("figures.formats", "a non-empty list", self.formats)
        if self.dpi < 30:
            raise config_error("figures.dpi", "≥ 30", self.dpi)


# --- training and evaluation of one run (conf/train.yaml, conf/evaluate.yaml) --------------------
# Profiles set these sections too. The run itself is the top-level estimator/beta/seed (RunSection).


_TRAIN_RUN_KEYS = ("checkpoint_every", "keep_checkpoints", "overwrite", "device", "max_train_prompts")


@dataclass
class TrainSection:
    """RLOO options (lmkl.rloo.RLOOConfig: see its docstring for each) and the run's bookkeeping.

    checkpoint_every: updates between checkpoints (one is always written at the end);
    overwrite: start afresh when the run folder holds a run of another configuration (else refuse);
    device: auto (cuda when visible) | cpu | cuda; max_train_prompts: use only the first N prompts.
    """

    steps: int = 100
    gradient: str = "paper"
    baseline_pairing: str = "per_prompt"
    k: int = 2
    num_prompts: int = 16
    num_ppo_epochs: int = 4
    num_mini_batches: int = 1
    micro_batch_size: int = 16
    cliprange: float = 0.2
    lr: float = 3e-5
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    max_new_tokens: int = 53
    temperature: float = 1.0
    ref_logits: str = "store"
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    overwrite: bool = False
    device: str = "auto"
    max_train_prompts: int | None = None

    def rloo_options(self) -> dict:
        """The RLOOConfig keyword arguments this section sets (all but the run's bookkeeping)."""
        from dataclasses import fields

        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _TRAIN_RUN_KEYS}

    def __post_init__(self) -> None:
        from lmkl.rloo.config import RLOOConfig

        try:  # the trainer's own validation, with a neutral estimator/beta (checked by RunSection)
            RLOOConfig(estimator="rb", beta=0.0, **self.rloo_options())
        except ValueError as e:
            raise ConfigError(f"train.{e}") from e
        if self.checkpoint_every < 1:
            raise config_error("train.checkpoint_every", "≥ 1", self.checkpoint_every)
        if self.keep_checkpoints < 1:
            raise config_error("train.keep_checkpoints", "≥ 1", self.keep_checkpoints)
        if self.device not in ("auto", "cpu", "cuda"):
            raise config_error("train.device", "auto, cpu or cuda", self.device)
        if self.max_train_prompts is not None and self.max_train_prompts < self.num_prompts:
            raise config_error("train.max_train_prompts", f"None or ≥ num_prompts = {self.num_prompts}", self.max_train_prompts)


@dataclass
class EvaluateSection:
    """Held-out evaluation of a trained policy at `temperature` (the authors use 1: on-policy KL).

    num_prompts: the first N test prompts (None: all); n_per_prompt: samples per prompt;
    max_new_tokens: None = the run's train.max_new_tokens; batch_size: sequences per forward pass;
    estimators: the KL value estimators reported; seed: sampling seed (the same for every run).
    """

    num_prompts: int | None = None
    n_per_prompt: int = 1
    max_new_tokens: int | None = None
    temperature: float = 1.0
    batch_size: int = 64
    estimators: list[str] = field(default_factory=lambda: list(VALUE_ESTIMATORS))
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.num_prompts is not None and self.num_prompts < 1:
            raise config_error("evaluate.num_prompts", "None or ≥ 1", self.num_prompts)
        for key in ("n_per_prompt", "batch_size"):
            if getattr(self, key) < 1:
                raise config_error(f"evaluate.{key}", "≥ 1", getattr(self, key))
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise config_error("evaluate.max_new_tokens", "None or ≥ 1", self.max_new_tokens)
        if not self.temperature > 0:
            raise config_error("evaluate.temperature", "> 0", self.temperature)
        for e in self.estimators:
            if e not in VALUE_ESTIMATORS:
                raise config_error("evaluate.estimators", f"estimators among {VALUE_ESTIMATORS}", e)
        if not self.estimators:
            raise config_error("evaluate.estimators", "a non-empty list", self.estimators)
        if self.device not in ("auto", "cpu", "cuda"):
            raise config_error("evaluate.device", "auto, cpu or cuda", self.device)
