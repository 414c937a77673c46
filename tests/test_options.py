"""One definition per option: the dataclass field (default + help) is the Hydra schema, the YAML
defaults and the `--help` text; a YAML value that drifts from its schema default fails here."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from lmkl.cli import main as lmkl_main
from lmkl.options import option, option_rows
from lmkl.rloo import RLOOConfig, RLOOOptions
from lmkl.stages.config import ConfigError, compose, conf_dir, load
from lmkl.stages.pipeline_config import SCHEMAS
from lmkl.stages.schema import TrainSection
from lmkl.stages.train import rloo_config

STAGES = sorted(SCHEMAS)


@pytest.mark.parametrize("stage", STAGES)
def test_yaml_without_profile_is_exactly_the_schema_defaults(stage):
    # conf/<stage>.yaml and conf/base.yaml set no value of their own: composed without the profile,
    # every key and value is the schema's. A value added to a primary YAML that differs from its
    # schema default (the old variance.oracle_toys 6 vs 12 drift) makes the two containers differ.
    composed = OmegaConf.to_container(compose(stage, ["~profile"]))
    schema = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[stage]))
    assert composed == schema


def test_every_primary_config_shares_the_base_defaults_list():
    for stage in STAGES:
        cfg = OmegaConf.load(conf_dir() / f"{stage}.yaml")
        assert list(cfg.keys()) == ["defaults"], f"conf/{stage}.yaml sets values; declare them in lmkl.stages.schema"
        assert list(cfg.defaults) == [f"schema/{stage}", "base", "_self_"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_has_help(stage):
    rows = list(option_rows(SCHEMAS[stage]))
    assert len(rows) > 40  # the profile's sections are there, not just the stage's own keys
    assert [key for key, _, help_ in rows if not help_.strip()] == []


def test_help_prints_every_option_with_help_and_default(capsys):
    assert lmkl_main(["train", "--help", "train.lr=0.5"]) == 0
    out = capsys.readouterr().out
    for key, _, help_ in option_rows(SCHEMAS["train"]):
        assert f"\n  {key}=" in out and help_ in out, key
    assert "  train.lr=0.5 [default: 3e-05]" in out  # the override, and the schema default beside it
    assert "  train.steps=40 [default: 100]" in out  # the tiny profile's value
    assert "  train.adam_eps=1e-08\n" in out


def test_help_of_a_study_shows_the_required_target(capsys):
    assert lmkl_main(["variance", "--help"]) == 0
    assert "\n  target=???" in capsys.readouterr().out


def test_train_section_is_the_trainer_options_plus_bookkeeping():
    rloo = {f.name for f in dataclasses.fields(RLOOOptions)}
    assert rloo <= {f.name for f in dataclasses.fields(TrainSection)}
    assert rloo == {f.name for f in dataclasses.fields(RLOOConfig)} - {"estimator", "beta", "seed", "device"}


def test_adam_eps_reaches_the_trainer():
    cfg = load("train", ["train.adam_eps=1e-6"], SCHEMAS["train"])
    assert rloo_config(cfg).adam_eps == 1e-6
    with pytest.raises(ConfigError, match=r"train\.adam_eps"):
        load("train", ["train.adam_eps=0"], SCHEMAS["train"])


@pytest.mark.parametrize(("override", "key"), [("train.bogus=1", "train.bogus"), ("train.steps=abc", "train.steps")])
def test_unknown_keys_and_wrong_types_are_refused_by_the_schema(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose("train", [override])


def test_option_needs_help_and_copies_mutable_defaults():
    with pytest.raises(ValueError, match="help"):
        option(1, "")

    @dataclasses.dataclass
    class Section:
        xs: list[int] = option([1], "a list")

    a, b = Section(), Section()
    a.xs.append(2)
    assert b.xs == [1]
