"""The trainer on a tiny random GPT-2: it learns an easy reward, resumes exactly, refuses bad input,
stops on NaN keeping the last good checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from lmkl.models import ModelPair
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer
from lmkl.rloo import (
    COLUMNS,
    RLOOConfig,
    RLOOTrainer,
    RunConfigMismatch,
    TrainingDiverged,
    check_run_dir,
    fit,
    read_metrics,
)
from lmkl.rloo.checkpoints import list_checkpoints

PROMPTS = ["This movie was", "The plot", "A quiet film", "I would not", "The soundtrack", "Boring and",
           "One of the best", "It was fine"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tok = build_tiny_tokenizer(root / "tok")
    from transformers import AutoTokenizer

    V = len(AutoTokenizer.from_pretrained(tok, local_files_only=True))
    return build_tiny_gpt2(root / "policy", vocab_size=V, seed=0, tokenizer_dir=tok)


def count_e(texts: list[str]) -> torch.Tensor:
    """An easy reward: the number of letters 'e' (the prompt is constant within a prompt's group)."""
    return torch.tensor([float(t.count("e")) for t in texts])


def make_trainer(model_dir, reward=count_e, **overrides) -> RLOOTrainer:
    opts = dict(estimator="rb", beta=0.05, k=2, num_prompts=4, micro_batch_size=4, num_ppo_epochs=2,
                lr=1e-3, max_new_tokens=6, steps=4, seed=0)
    opts.update(overrides)
    return RLOOTrainer(ModelPair.load(model_dir, model_dir), reward, PROMPTS, RLOOConfig(**opts))


def without_time(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("gradient", ["paper", "causal"])
def test_resume_matches_an_uninterrupted_run(model_dir, tmp_path, gradient):
    straight = make_trainer(model_dir, gradient=gradient, steps=4)
    rows_a = fit(straight, tmp_path / "a", checkpoint_every=2)

    first = make_trainer(model_dir, gradient=gradient, steps=2)
    fit(first, tmp_path / "b", checkpoint_every=2)
    resumed = make_trainer(model_dir, gradient=gradient, steps=4)  # fresh weights: must come from the checkpoint
    rows_b = fit(resumed, tmp_path / "b", checkpoint_every=2)

    assert len(read_metrics(tmp_path / "b" / "metrics.csv")) == 4
    assert without_time(rows_a) == without_time(rows_b)  # same samples, same updates: bitwise on CPU
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "b" / "model" / "config.json").is_file()
    assert list(read_metrics(tmp_path / "b" / "metrics.csv")[0]) == list(COLUMNS)


def test_interrupted_run_resumes_from_last_checkpoint(model_dir, tmp_path):
    """A crash between checkpoints: rows after the last checkpoint are recomputed, not duplicated."""
    trainer = make_trainer(model_dir, steps=3)
    calls = {"n": 0}

    def crash_at_third(texts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return count_e(texts)

    trainer.reward_fn = crash_at_third
    with pytest.raises(KeyboardInterrupt):
        fit(trainer, tmp_path, checkpoint_every=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001.pt", "step_000002.pt"]
    rows = fit(make_trainer(model_dir, steps=3), tmp_path, checkpoint_every=1)
    reference = fit(make_trainer(model_dir, steps=3), tmp_path / "ref", checkpoint_every=1)
    assert without_time(rows) == without_time(reference)


def test_rng_states_restore_from_a_device_mapped_checkpoint(model_dir, tmp_path):
    """Resuming on CUDA loads the checkpoint with map_location=cuda; Generator.set_state and
    torch.set_rng_state take only CPU ByteTensors. map_location="meta" stands in for the GPU here: it
    moves every tensor off the host (and drops its data), so the RNG states and the prompt order must
    come through untouched for the resumed run to equal the uninterrupted one."""
    from lmkl.rloo.checkpoints import load_latest

    straight = make_trainer(model_dir, steps=3)
    rows_a = fit(straight, tmp_path / "a", checkpoint_every=3)
    fit(make_trainer(model_dir, steps=2), tmp_path / "b", checkpoint_every=2)

    mapped = load_latest(tmp_path / "b", map_location="meta")
    assert all(t.is_meta for t in mapped["policy"].values())  # the mapping did apply to tensors
    weights = load_latest(tmp_path / "b", map_location="cpu")
    resumed = make_trainer(model_dir, steps=3)
    # weights and optimizer state from a host copy (meta tensors carry no values); all else as mapped
    resumed.load_state_dict({**mapped, "policy": weights["policy"], "optimizer": weights["optimizer"]})
    assert resumed.sample_generator.get_state().device.type == "cpu"
    row = resumed.step()
    assert without_time([row]) == without_time(rows_a[2:])  # same prompts, same samples, same update


def test_extending_a_linear_schedule_run_is_refused(model_dir, tmp_path):
    fit(make_trainer(model_dir, steps=2, lr_schedule="linear"), tmp_path, checkpoint_every=1)
    with pytest.raises(RunConfigMismatch, match=r"train\.steps changed from 2 to 4, but with lr_schedule=linear"):
        fit(make_trainer(model_dir, steps=4, lr_schedule="linear"), tmp_path, checkpoint_every=1)
    assert len(fit(make_trainer(model_dir, steps=2, lr_schedule="linear"), tmp_path)) == 2  # same length: fine
    # a constant schedule has nothing to restart: the run goes on
    fit(make_trainer(model_dir, steps=2), tmp_path / "c", checkpoint_every=1)
    assert len(fit(make_trainer(model_dir, steps=3), tmp_path / "c", checkpoint_every=1)) == 3


def test_training_raises_an_easy_reward(model_dir):
    """REINFORCE-LOO on 'count the e's' from a random model: the mean reward goes up.

    Seeded. Mean reward of the first 3 vs the last 3 updates (3 × 16 samples each); the margin is 4
    standard errors of the difference, estimated from the per-step reward spread, so a trainer that
    does not learn passes with probability < 1e-4 (normal approximation).
    """
    trainer = make_trainer(model_dir, estimator="rb", gradient="causal", num_prompts=8, micro_batch_size=16,
                           num_ppo_epochs=1, lr=1e-2, max_new_tokens=8, steps=20)
    rows = [trainer.step() for _ in range(trainer.config.steps)]
    first, last = rows[:3], rows[-3:]
    mean = lambda rs: sum(r["reward"] for r in rs) / len(rs)  # noqa: E731
    var = lambda rs: sum(r["reward_std"] ** 2 for r in rs) / len(rs) / (16 * len(rs))  # noqa: E731
    se_diff = math.sqrt(var(first) + var(last))
    assert mean(last) - mean(first) > 4 * se_diff, (mean(first), mean(last), se_diff)


@pytest.mark.parametrize(
    ("key", "value"),
    [("beta", -0.1), ("beta", float("nan")), ("k", 1), ("estimator", "k3"), ("gradient", "dice"),
     ("baseline_pairing", "random"), ("micro_batch_size", 3), ("ref_logits", "disk")],
)
def test_bad_options_refused_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"^{key}"):
        RLOOConfig(**{key: value})


def test_nan_reward_stops_and_keeps_last_good_checkpoint(model_dir, tmp_path):
    calls = {"n": 0}

    def nan_at_third(texts):
        calls["n"] += 1
        r = count_e(texts)
        return r * float("nan") if calls["n"] == 3 else r

    trainer = make_trainer(model_dir, reward=nan_at_third, steps=5)
    with pytest.raises(TrainingDiverged, match=r"reward at step 3.*last good checkpoint: step 2"):
        fit(trainer, tmp_path, checkpoint_every=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001.pt", "step_000002.pt"]
    assert not (tmp_path / "model").exists()


def test_ref_logits_store_and_recompute_agree(model_dir):
    a = make_trainer(model_dir, ref_logits="store", steps=2)
    b = make_trainer(model_dir, ref_logits="recompute", steps=2)
    for _ in range(2):
        ra, rb = a.step(), b.step()
    for k in ("reward", "kl_rb", "kl_mc", "policy_loss"):
        # the same forward passes in another grouping: equal up to float32 summation order
        assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), k


def test_run_dir_refuses_another_config(tmp_path):
    fp = {"rloo": RLOOConfig().fingerprint()}
    check_run_dir(tmp_path / "run", fp)
    check_run_dir(tmp_path / "run", fp)  # same: fine (resume)
    other = {"rloo": RLOOConfig(lr=1e-4).fingerprint()}
    with pytest.raises(RunConfigMismatch, match=r"rloo\.lr"):
        check_run_dir(tmp_path / "run", other)
    (tmp_path / "run" / "metrics.csv").write_text("old")
    check_run_dir(tmp_path / "run", other, overwrite=True)
    assert not (tmp_path / "run" / "metrics.csv").exists()
    # only steps may change
    assert RLOOConfig(steps=5).fingerprint() == RLOOConfig(steps=9).fingerprint()
