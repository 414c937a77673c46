"""`lmkl evaluate profile=P estimator=E beta=B seed=S`: a trained policy on held-out prompts.

Samples `evaluate.n_per_prompt` responses per test prompt from the policy (results/P/train/<run>/model)
at `evaluate.temperature` (1: the authors' choice, so that the KL estimates are on-policy), scores
them with the profile's reward (prompt + response text, as in training), and estimates
KL(policy ‖ reference) with every estimator of `evaluate.estimators` from the same samples.
Writes eval.json in the run folder (atomically):

  {"reward": mean, "reward_stderr": ..., "kl": {estimator: mean}, "kl_stderr": {...},
   "kl_frac_negative": {...}, "kl_ci95": {estimator: [low, high]}, "n": sequences, "num_prompts": ...,
   "n_per_prompt": ..., "max_new_tokens": ..., "temperature": ..., "response_length": ..., "config": {...}}

The standard errors treat the n (prompt, response) pairs as i.i.d. draws (exact with n_per_prompt = 1:
the prompts are a random held-out sample); the KL is the prompt-averaged KL of the response process
capped at max_new_tokens. The cross-fitted estimators (rb_cv, cv_opt) fit each prompt's coefficient on
the other prompts' sequences (`estimate(..., groups=prompt)`, exactly unbiased) and take their standard
error from the delete-a-prompt jackknife (`lmkl.kl.summarize_estimator`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from lmkl.atomic import atomic_write_json
from lmkl.kl import summarize, summarize_estimator
from lmkl.models import sample_and_score
from lmkl.stages import runner
from lmkl.stages.config import to_dict
from lmkl.stages.inputs import load_pair_and_reward, read_test_prompts, require, require_assets, stage_device
from lmkl.stages.pipeline_config import RunConfig, profile_paths
from lmkl.stages.run_tracking import add_evaluation

log = logging.getLogger("lmkl")


def run_max_new_tokens(cfg: RunConfig, run_dir: Path) -> int:
    """evaluate.max_new_tokens, else the value the run was trained with (its run_config.json)."""
    if cfg.evaluate.max_new_tokens is not None:
        return cfg.evaluate.max_new_tokens
    run_config = run_dir / "run_config.json"
    if run_config.is_file():
        return int(json.loads(run_config.read_text())["rloo"]["max_new_tokens"])
    return cfg.train.max_new_tokens


def evaluate(cfg: RunConfig) -> Path:
    ev = cfg.evaluate
    paths = profile_paths(cfg)
    run_dir = paths.run_dir(cfg.estimator, cfg.beta, cfg.seed)
    policy_dir = require(paths.final_model(cfg.estimator, cfg.beta, cfg.seed), "trained policy (run `lmkl train`)")
    if cfg.reward.kind == "classifier":
        require_assets(paths, "reward")
    prompts = read_test_prompts(paths, ev.num_prompts)  # checks the policy and prompts assets too
    max_new = run_max_new_tokens(cfg, run_dir)
    device = stage_device(cfg)
    pair, reward = load_pair_and_reward(cfg, policy_dir, device)
    gen = torch.Generator(device=device).manual_seed(ev.seed)  # the same seed for every run: paired samples

    out = sample_and_score(pair, prompts, ev.n_per_prompt, max_new_tokens=max_new, temperature=ev.temperature,
                           batch_size=ev.batch_size, generator=gen, device="cpu")
    # The reward sees prompt + response, as in training.
    texts = [prompts[int(i)] + t for i, t in zip(out.prompt_index, out.texts)]
    with torch.no_grad():
        r = summarize(torch.as_tensor(reward(texts), dtype=torch.float64).reshape(-1).cpu())
    # Cross-fitted estimators fit their coefficient on the other prompts (groups), jackknife stderr.
    kl = {e: summarize_estimator(out.stats, e, groups=out.prompt_index) for e in ev.estimators}
    result = {
        "reward": r.mean,
        "reward_stderr": r.stderr,
        "kl": {e: s.mean for e, s in kl.items()},
        "kl_stderr": {e: s.stderr for e, s in kl.items()},
        "kl_frac_negative": {e: s.frac_negative for e, s in kl.items()},
        "kl_ci95": {e: [s.ci_low, s.ci_high] for e, s in kl.items()},
        "n": r.n,
        "num_prompts": len(prompts),
        "n_per_prompt": ev.n_per_prompt,
        "max_new_tokens": max_new,
        "temperature": ev.temperature,
        "response_length": float(out.lengths.double().mean()),
        "run": run_dir.name,
        "config": to_dict(cfg),
    }
    path = atomic_write_json(paths.eval_json(cfg.estimator, cfg.beta, cfg.seed), result)
    flat = {"eval/reward": r.mean, "eval/reward_stderr": r.stderr, "eval/n": r.n}
    flat.update({f"eval/kl_{e}": s.mean for e, s in kl.items()})
    flat.update({f"eval/kl_{e}_stderr": s.stderr for e, s in kl.items()})
    flat.update({f"eval/kl_{e}_frac_negative": s.frac_negative for e, s in kl.items()})
    add_evaluation(cfg, run_dir, flat)  # into the training run's own W&B summary
    log.info("%s: reward %.4f ± %.2g, KL rb %s, mc %s → %s", run_dir.name, r.mean, r.stderr,
             kl.get("rb", "-"), kl.get("mc", "-"), path)
    return path


def main(overrides: list[str]) -> int:
    return runner.run("evaluate", overrides, RunConfig, evaluate)
