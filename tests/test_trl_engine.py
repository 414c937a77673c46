"""train.engine=trl: lmkl.integrations.trl.run.train_rloo writes lmkl's run folder and resumes; the train
stage's options refuse what the engine cannot reproduce (tiny random GPT-2, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from lmkl.integrations.trl.run import train_rloo, trl_args
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer
from lmkl.rloo import COLUMNS, RLOOConfig, RunConfigMismatch, read_metrics
from lmkl.stages.config import ConfigError
from lmkl.stages.plan import check_stage

PROMPTS = ["The movie was", "It was fine:", "I loved it", "Boring and slow"]


def reward(texts):
    return torch.tensor([sum(ch in "aeiou" for ch in t) / 4 for t in texts])


def _rc(**over) -> RLOOConfig:
    base = dict(estimator="rb", gradient="causal", steps=1, num_prompts=2, k=2, num_ppo_epochs=2,
                micro_batch_size=2, max_new_tokens=5, lr=1e-3, beta=0.1, device="cpu")  # fmt: skip
    return RLOOConfig(**{**base, **over})


@pytest.mark.slow
def test_train_rloo_writes_the_run_folder_and_resumes(tmp_path):
    tok = build_tiny_tokenizer(tmp_path / "tok")
    policy = build_tiny_gpt2(tmp_path / "p", 300, seed=0, tokenizer_dir=tok, init_std=0.3, eos_boost=2.0)
    run = tmp_path / "run"
    rows = train_rloo(policy, reward, PROMPTS, _rc(), run, checkpoint_every=1)
    assert len(rows) == 1 and set(COLUMNS) <= set(rows[0])
    assert read_metrics(run / "metrics.csv") == [{k: float(v) if k != "step" else v for k, v in rows[0].items()}]
    assert rows[0]["kl_rb"] == 0.0  # the first rollout's policy is the reference
    model = AutoModelForCausalLM.from_pretrained(run / "model")
    start = AutoModelForCausalLM.from_pretrained(policy)
    assert not torch.equal(model.transformer.h[0].mlp.c_fc.weight, start.transformer.h[0].mlp.c_fc.weight)

    more = train_rloo(policy, reward, PROMPTS, _rc(steps=2), run, checkpoint_every=1)  # resumes: one more update
    assert len(more) == 2 and more[0] == rows[0] and more[1]["kl_rb"] > 0
    assert [r["step"] for r in read_metrics(run / "metrics.csv")] == [1, 2]
    with pytest.raises(RunConfigMismatch, match="beta"):
        train_rloo(policy, reward, PROMPTS, _rc(steps=2, beta=0.2), run)


def test_options_the_engine_cannot_reproduce_are_refused(tmp_path):
    with pytest.raises(ValueError, match="gradient"):
        trl_args(_rc(gradient="paper"), tmp_path, processes=1, checkpoint_every=1, keep_checkpoints=1)
    with pytest.raises(ValueError, match="micro_batch_size"):
        trl_args(_rc(num_prompts=3, micro_batch_size=2), tmp_path, processes=2, checkpoint_every=1, keep_checkpoints=1)
    args = trl_args(_rc(num_prompts=8, micro_batch_size=4, num_mini_batches=2), tmp_path, processes=1,
                    checkpoint_every=3, keep_checkpoints=1)  # fmt: skip
    # 16 sequences per update in 2 mini-batches of 8 = 2 micro-batches of 4; 2 epochs × 2 optimizer steps
    assert (args.gradient_accumulation_steps, args.steps_per_generation, args.num_iterations) == (2, 4, 2)
    assert (args.max_steps, args.save_steps, args.num_generations) == (4, 12, 2)
    assert dataclasses.asdict(_rc())["gradient"] == "causal"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["train.engine=tf"], "train.engine"),
        (["train.processes=2"], "train.processes"),  # several processes need the trl engine
        (["train.engine=trl", "train.gradient=paper"], "train.gradient"),
        (["train.engine=trl", "train.gradient=causal", "train.baseline_pairing=original"], "train.baseline_pairing"),
    ],
)
def test_train_stage_refuses_bad_engine_options(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_stage("train", ["profile=tiny", *overrides, "estimator=rb", "beta=0.1", "seed=0"])


def test_train_stage_accepts_the_trl_engine():
    check_stage("train", ["profile=tiny", "train.engine=trl", "train.gradient=causal", "train.processes=2",
                          "estimator=rb", "beta=0.1", "seed=0"])  # fmt: skip
