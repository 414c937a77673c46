"""The config sections of the pipeline: each option declared once, with its default and help text
(`lmkl.options.option`). Profiles (conf/profile/*.yaml) and the model/reward/data groups override the
defaults; `lmkl.stages.pipeline_config` assembles the sections into each stage's schema.

Each dataclass checks its values in `__post_init__` and raises ConfigError naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from lmkl.assets.corpus import UCI_SOURCES
from lmkl.kl import ESTIMATORS, SURROGATE_FORMS
from lmkl.options import option
from lmkl.rloo.config import TRAIN_ESTIMATORS, RLOOOptions
from lmkl.stages.config import ConfigError, config_error


@dataclass
class ProfileSection:
    """Which profile this is and where its outputs go: results/<name>/, figures/<name>/."""

    name: str = option("tiny", "the profile's name: outputs go to results/<name>/ and figures/<name>/")
    results_root: str = option("results", "folder holding every profile's results")
    figures_root: str = option("figures", "folder holding every profile's figures")
    description: str = option("", "one line saying what the profile is")

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise config_error("profile.name", "a non-empty folder name", self.name)


@dataclass
class SweepSection:
    """The training sweep: one run per estimator × beta × seed (Snakemake reads these lists)."""

    estimators: list[str] = option(["mc", "rb"], f"training estimators (one run each): among {list(TRAIN_ESTIMATORS)}")
    betas: list[float] = option([0.05, 0.1], "KL coefficients β ≥ 0 (one run each)")
    seeds: list[int] = option([0], "seeds (one run each)")

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

    enabled: bool = option(True, "log config, metrics and summaries to W&B (WANDB_MODE=disabled also turns it off)")
    project: str = option("lmkl", "W&B project")


@dataclass
class RunSection:
    """The single run a train/evaluate stage works on (top-level keys estimator, beta, seed)."""

    estimator: str = option("rb", f"the run's training estimator: {' | '.join(TRAIN_ESTIMATORS)}")
    beta: float = option(0.05, "the run's KL coefficient β ≥ 0")
    seed: int = option(0, "the run's seed")

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

    name: str = option("tiny-gpt2", "the model's name (its file in conf/model/)")
    source: str = option("pretrain", "pretrain (tiny, built locally) | smollm2_wheel | hub")
    hub_id: str | None = option(None, "for source=hub: a model id, e.g. lvwerra/gpt2-imdb (or a local folder holding a copy)")
    revision: str | None = option(None, "for source=hub: a branch, tag or commit (null: the default branch)")
    dtype: str = option("float32", "float32 | bfloat16 | float16 | float64")
    vocab_size: int = option(4096, "source=pretrain: BPE vocabulary size")
    n_layer: int = option(2, "source=pretrain: GPT-2 layers")
    n_head: int = option(4, "source=pretrain: attention heads")
    n_embd: int = option(128, "source=pretrain: embedding width")
    n_positions: int = option(128, "source=pretrain: context length")

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

    kind: str = option("vader", "vader | classifier")
    hub_id: str | None = option(None, "for kind=classifier: a model id, e.g. lvwerra/distilbert-imdb")
    positive_label: str = option("POSITIVE", "for kind=classifier: the label whose logit is the reward")
    batch_size: int = option(64, "texts per reward call")
    revision: str | None = option(None, "for kind=classifier: a branch, tag or commit of hub_id")

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

    source: str = option("uci", "uci (committed data/) | hf_imdb (datasets: stanfordnlp/imdb)")
    hf_dataset: str = option("stanfordnlp/imdb", "for source=hf_imdb: the dataset, or a local folder with train/test data files")
    uci_sources: list[str] = option(["imdb"], "for source=uci: which UCI files (imdb, amazon, yelp)")
    unit: str = option("words", "prefix length counted in words (whitespace) or tokens (the policy's tokenizer)")
    min_chars: int = option(200, "for source=hf_imdb: only reviews longer than this (TRL's sentiment example)")
    min_words: int = option(2, "shortest prefix, in `unit`s")
    max_words: int = option(8, "longest prefix, in `unit`s (inclusive)")
    test_fraction: float = option(0.2, "share of the sentences held out for the test prompts")
    max_train_prompts: int | None = option(None, "keep only the first N training prompts (null: all)")
    max_test_prompts: int | None = option(None, "keep only the first N test prompts (null: all)")
    seed: int = option(0, "seed of the prefix cuts and the train/test split")

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

    prompts: int = option(8, "held-out prompts studied (the first N)")
    repetitions: int = option(32, "R: independent estimates per prompt, estimator and M")
    sample_sizes: list[int] = option([1, 2, 4, 8, 16], "the sample sizes M")
    estimators: list[str] = option(list(ESTIMATORS), "value estimators studied (mc included: results are relative to it)")
    ground_truth_samples: int = option(512, "samples per prompt of the ground-truth rb estimate")
    max_new_tokens: int = option(53, "length cap of a response")
    temperature: float = option(1.0, "sampling temperature (both models are tempered by it)")
    micro_batch: int = option(64, "sequences per sampling/scoring call")
    seed: int = option(0, "sampling seed (the same for every policy)")
    oracle_toys: int = option(6, "exact study: random tabular toy pairs (plus the two-step counterexample)")
    oracle_crossfit_m: int = option(4, "exact study: M at which the cross-fitted estimators are taken")

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

    prompts: int = option(4, "held-out prompts (the first N)")
    repetitions: int = option(16, "R: independent gradient estimates per form and M")
    sample_sizes: list[int] = option([1, 4, 16], "the sample sizes M per prompt")
    forms: list[str] = option(list(SURROGATE_FORMS), "surrogate forms studied (mc_seq included: results are relative to it)")
    parameters: list[str] = option([], "regexes on parameter names restricting θ; [] = every parameter")
    policy_run: str | None = option(None, "the trained run studied, e.g. rb_beta0.05_seed0; null = the first rb run of the sweep at its smallest beta")
    max_new_tokens: int = option(53, "length cap of a response")
    temperature: float = option(1.0, "sampling temperature")
    seed: int = option(0, "sampling seed")
    exact_toys: int = option(8, "exact study: random tabular toy pairs (plus the counterexample)")

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

    formats: list[str] = option(["png", "pdf"], "formats written for every figure: png, pdf, svg")
    dpi: int = option(150, "resolution of raster formats")

    def __post_init__(self) -> None:
        for f in self.formats:
            if f not in ("png", "pdf", "svg"):
                raise config_error("figures.formats", "formats among ['png', 'pdf', 'svg']", f)
        if not self.formats:
            raise config_error("figures.formats", "a non-empty list", self.formats)
        if self.dpi < 30:
            raise config_error("figures.dpi", "≥ 30", self.dpi)


@dataclass
class ReportSection:
    """The claims report (lmkl report): bootstrap of the claims' 95 % intervals (lmkl.studies.claims_report)."""

    n_boot: int = option(2000, "bootstrap resamples per claim (percentile intervals; ≥ 100)")
    seed: int = option(0, "seed of numpy's generator that draws the resamples")

    def __post_init__(self) -> None:
        if self.n_boot < 100:
            raise config_error("report.n_boot", "≥ 100 resamples for a 95 % percentile interval", self.n_boot)


# --- training and evaluation of one run (conf/train.yaml, conf/evaluate.yaml) --------------------
ENGINES = ("lmkl", "trl")  # train.engine: our RLOO trainer | TRL's RLOOTrainer + lmkl's KL term
# Profiles set these sections too. The run itself is the top-level estimator/beta/seed (RunSection).


@dataclass
class TrainSection(RLOOOptions):
    """RLOO options (lmkl.rloo.RLOOOptions, each declared there with its help) and the run's bookkeeping."""

    checkpoint_every: int = option(10, "updates between checkpoints (one is always written at the end)")
    keep_checkpoints: int = option(2, "checkpoints kept (the newest)")
    overwrite: bool = option(False, "true: discard a run folder of another configuration and start afresh (else refuse)")
    max_train_prompts: int | None = option(None, "use only the first N training prompts (null: all)")
    engine: str = option(
        "lmkl", "lmkl (our single-process RLOO) | trl (TRL's RLOOTrainer with lmkl's KL term on accelerate; "
        "needs gradient=causal; lmkl.integrations.trl.run)"
    )
    processes: int = option(
        1, "train.engine=trl: processes, started with `accelerate launch --num_processes N` (one per GPU); "
        "1 runs in the stage's own process, as does any process accelerate has already launched"
    )

    def rloo_options(self) -> dict:
        """The RLOOConfig keyword arguments this section sets (all but the run's bookkeeping)."""
        return {f.name: getattr(self, f.name) for f in fields(RLOOOptions)}

    def __post_init__(self) -> None:
        try:  # the trainer's own validation
            RLOOOptions.validate(self)
        except ValueError as e:
            raise ConfigError(f"train.{e}") from e
        if self.checkpoint_every < 1:
            raise config_error("train.checkpoint_every", "≥ 1", self.checkpoint_every)
        if self.keep_checkpoints < 1:
            raise config_error("train.keep_checkpoints", "≥ 1", self.keep_checkpoints)
        if self.max_train_prompts is not None and self.max_train_prompts < self.num_prompts:
            raise config_error("train.max_train_prompts", f"None or ≥ num_prompts = {self.num_prompts}", self.max_train_prompts)
        if self.engine not in ENGINES:
            raise config_error("train.engine", f"one of {list(ENGINES)}", self.engine)
        if self.processes < 1 or (self.processes > 1 and self.engine != "trl"):
            raise config_error("train.processes", "≥ 1, and 1 unless train.engine=trl", self.processes)
        if self.engine == "trl" and self.gradient != "causal":
            raise config_error("train.gradient", "causal with train.engine=trl (β·kl_surrogate in TRL's loss)", self.gradient)
        if self.engine == "trl" and self.baseline_pairing != "per_prompt":
            raise config_error("train.baseline_pairing", "per_prompt with train.engine=trl", self.baseline_pairing)


@dataclass
class EvaluateSection:
    """Held-out evaluation of a trained policy at `temperature` (the authors use 1: on-policy KL).

    num_prompts: the first N test prompts (None: all); n_per_prompt: samples per prompt;
    max_new_tokens: None = the run's train.max_new_tokens; batch_size: sequences per forward pass;
    estimators: the KL value estimators reported; seed: sampling seed (the same for every run).
    """

    num_prompts: int | None = option(None, "the first N test prompts; null: all")
    n_per_prompt: int = option(1, "samples per prompt")
    max_new_tokens: int | None = option(None, "length cap of a response; null: the run's train.max_new_tokens")
    temperature: float = option(1.0, "the authors evaluate at 1 so that KL estimates are on-policy")
    batch_size: int = option(64, "sequences per forward pass")
    estimators: list[str] = option(list(ESTIMATORS), "the KL value estimators reported")
    seed: int = option(0, "sampling seed (the same for every run: paired samples)")

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


# --- the assets' own stages (conf/download.yaml, conf/pretrain.yaml) --------------------------------


@dataclass
class DownloadSection:
    """`lmkl download`: what to rebuild and what the tiny tokenizer is trained on."""

    force: bool = option(False, "rebuild every asset even when current")
    tokenizer_corpus: list[str] = option(list(UCI_SOURCES), "model.source=pretrain: UCI files the BPE tokenizer is trained on")

    def __post_init__(self) -> None:
        if not self.tokenizer_corpus or set(self.tokenizer_corpus) - set(UCI_SOURCES):
            raise config_error("download.tokenizer_corpus", f"a non-empty subset of {list(UCI_SOURCES)}", self.tokenizer_corpus)


@dataclass
class PretrainSection:
    """`lmkl pretrain`: a fixed number of steps, not a wall-clock budget, so the result is reproducible;
    sized for ≤ 2.5 min on 2 CPU cores."""

    force: bool = option(False, "retrain even when the policy is current")
    corpus: list[str] = option(list(UCI_SOURCES), "UCI files; every sentence ends with <|endoftext|>")
    heldout_fraction: float = option(0.1, "sentences held out for the perplexity in the manifest")
    steps: int = option(700, "≈ 8 epochs; ~1.5 min on one free core (held-out perplexity ≈ 300)")
    batch_size: int = option(32, "sentences per step")
    lr: float = option(3e-3, "AdamW learning rate (after warm-up)")
    warmup_steps: int = option(50, "linear warm-up steps")
    weight_decay: float = option(0.1, "AdamW weight decay")
    dropout: float = option(0.1, "dropout while pretraining")
    seed: int = option(0, "initialisation and batch-order seed")
    eval_every: int = option(200, "held-out NLL in the log every N steps (0: only at the end)")
    bucket: int = option(16, "length-sorted spans of N batches: 2× faster than random batches (1)")
    threads: int = option(1, "torch CPU threads; 1: bit-for-bit reproducible on any machine and immune to "
                             "oversubscription when jobs run side by side")

    def __post_init__(self) -> None:
        if not self.corpus or set(self.corpus) - set(UCI_SOURCES):
            raise config_error("pretrain.corpus", f"a non-empty subset of {list(UCI_SOURCES)}", self.corpus)
        for key in ("steps", "batch_size", "threads", "bucket"):
            if getattr(self, key) < 1:
                raise config_error(f"pretrain.{key}", "an integer ≥ 1", getattr(self, key))
        if not 0 < self.heldout_fraction < 1:
            raise config_error("pretrain.heldout_fraction", "a fraction in (0, 1)", self.heldout_fraction)
        if not 0 <= self.dropout < 1:
            raise config_error("pretrain.dropout", "a probability in [0, 1)", self.dropout)
        if self.lr <= 0 or self.warmup_steps < 0 or self.weight_decay < 0 or self.eval_every < 0:
            raise config_error("pretrain.lr/warmup_steps/weight_decay/eval_every", "lr > 0, the others ≥ 0",
                               (self.lr, self.warmup_steps, self.weight_decay, self.eval_every))
