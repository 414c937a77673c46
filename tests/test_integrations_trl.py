"""lmkl.integrations.trl: the KL term inside TRL's GRPO/RLOO trainers (tiny random GPT-2s, CPU, float64).

1. The integrated term's gradient (trainer loss − TRL's own loss) equals β·∇ mean kl_surrogate on the
   same batch, computed from the two models' full logits (the hidden-state path never forms them).
2. With β = 0 the trainers are TRL's: the same parameters after two steps, bit for bit.
3. Bad options are refused with the key's name.
The 2-process accelerate equivalence is in test_integrations_trl_ddp.py.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from lmkl.integrations.trl import KL_GRADIENTS, RBGRPOTrainer, RBRLOOTrainer
from lmkl.kl import kl_surrogate, surrogate_from_stats, token_stats
from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

PROMPTS = ["The movie was", "Boring, slow and far too long. I would", "A", "It was fine:"]
KINDS = {"grpo": (GRPOConfig, GRPOTrainer, RBGRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer, RBRLOOTrainer)}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trl_models")
    tok = build_tiny_tokenizer(root / "tok")
    p = build_tiny_gpt2(root / "p", 300, seed=0, tokenizer_dir=tok, init_std=0.3, eos_boost=2.0)
    q = build_tiny_gpt2(root / "q", 300, seed=1, tokenizer_dir=tok, init_std=0.3, eos_boost=2.0)
    return p, q


def reward(completions, **_):
    """Deterministic: favours long completions with many vowels."""
    return [sum(ch in "aeiou" for ch in c) / 4 for c in completions]


def _config(kind: str, tmp_path, **over):
    Config = KINDS[kind][0]
    base = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
        max_steps=2, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", disable_dropout=True,
        learning_rate=1e-2, seed=0, beta=0.0, bf16=False,
    )  # fmt: skip
    return Config(**{**base, **over})


def _load(path, dtype=torch.float64):
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def _grads(model, loss) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, allow_unused=False)])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_integrated_term_gradient_equals_kl_surrogate(kind, dirs, tmp_path):
    p_dir, q_dir = dirs
    _, TRLTrainer, RBTrainer = KINDS[kind]
    beta, tau = 0.3, 0.7
    args = _config(kind, tmp_path, beta=beta, temperature=tau, gradient_accumulation_steps=1)
    ds = Dataset.from_dict({"prompt": PROMPTS})
    tr = RBTrainer(_load(p_dir), reward, args=args, train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(p_dir),
                   ref_model=_load(q_dir))  # fmt: skip
    assert args.beta == beta and tr.beta == 0.0 and tr.kl_beta == beta  # TRL's own term is off; args untouched
    tr.current_gradient_accumulation_steps = 1
    model = tr.model
    model.train()
    inputs = tr._generate_and_score_completions([{"prompt": s} for s in PROMPTS[:2] for _ in range(2)])
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    tokens, mask = inputs["completion_ids"], inputs["completion_mask"].bool()
    T = tokens.shape[1]  # completion positions
    assert bool(mask.any())

    g_trl = _grads(model, TRLTrainer._compute_loss(tr, model, inputs))
    logits_q = tr.kl_ref_model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau
    for form in KL_GRADIENTS:
        tr.kl_gradient = form
        g_term = _grads(model, tr._compute_loss(model, inputs)) - g_trl
        logits_p = model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau  # full [B, T, V]
        g_ref = _grads(model, beta * kl_surrogate(logits_p, logits_q.detach(), tokens, mask, form).mean())
        assert float(g_ref.abs().max()) > 1e-3  # the models differ: a real gradient, not two zeros
        # float64 throughout; the term is the difference of two gradients of size ~1, so rounding is
        # ~1e-14. RLOO's importance weight exp(Σ log p − old log p) is 1 up to the same rounding.
        torch.testing.assert_close(g_term, g_ref, rtol=0, atol=1e-9 * float(g_ref.abs().max()))
    assert {"kl/mc", "kl/rb", "kl/k3"} <= set(tr._metrics["train"])

    # Off-policy (a later PPO iteration): the old log-probs differ from the current ones, and the term
    # must carry TRL's importance weights — per token for GRPO, per sequence for RLOO.
    tr.kl_gradient = "rb_causal"
    with torch.no_grad():
        logps = tr._get_per_token_logps_and_entropies(model, ids, attn, T)[0]  # TRL's log p_θ(y_t)
    shift = 0.2 * torch.randn(logps.shape, generator=torch.Generator().manual_seed(0), dtype=logps.dtype)
    if kind == "grpo":
        inputs["old_per_token_logps"] = logps - shift
        weights = (shift * mask).exp()  # [B, T]
    else:
        inputs["old_logps"] = ((logps - shift) * mask).sum(-1)
        weights = (shift * mask).sum(-1).exp()  # [B]
    g_trl = _grads(model, TRLTrainer._compute_loss(tr, model, inputs))
    g_term = _grads(model, tr._compute_loss(model, inputs)) - g_trl
    logits_p = model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau
    stats = token_stats(logits_p, logits_q.detach(), tokens, mask)
    g_ref = _grads(model, beta * surrogate_from_stats(stats, "rb_causal", weights=weights).mean())
    # TRL's log-probs are float32 (its kernel accumulates in fp32): RLOO's log-weight, a float32 sum of
    # 8 terms of total size ~20, carries ~2e-6 rounding, so 1e-5 relative; without the weights the
    # gradient would be off by ~|shift| = 0.2 relative.
    torch.testing.assert_close(g_term, g_ref, rtol=0, atol=1e-5 * float(g_ref.abs().max()))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_beta_zero_leaves_trl_unchanged(kind, dirs, tmp_path):
    p_dir, _ = dirs
    _, TRLTrainer, RBTrainer = KINDS[kind]
    tok = AutoTokenizer.from_pretrained(p_dir)
    ds = Dataset.from_dict({"prompt": PROMPTS})
    params = []
    for cls in (TRLTrainer, RBTrainer):
        model = _load(p_dir, torch.float32)
        tr = cls(model, reward, args=_config(kind, tmp_path, num_iterations=2), train_dataset=ds, processing_class=tok)
        tr.train()
        params.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    start = torch.cat([p.reshape(-1) for p in _load(p_dir, torch.float32).parameters()])
    assert not torch.equal(params[0], start)  # training moved the weights
    assert torch.equal(params[0], params[1])


def test_bad_options_are_refused(dirs, tmp_path):
    p_dir, _ = dirs
    ds = Dataset.from_dict({"prompt": PROMPTS})
    for kwargs, key in (({"kl_gradient": "rb_paper"}, "kl_gradient"), ({"kl_beta": -1.0}, "kl_beta")):
        with pytest.raises(ValueError, match=key):
            RBGRPOTrainer(_load(p_dir), reward, args=_config("grpo", tmp_path), train_dataset=ds, **kwargs)
    with pytest.raises(ValueError, match="args"):
        RBRLOOTrainer(_load(p_dir), reward, train_dataset=ds)
