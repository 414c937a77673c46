"""lmkl.integrations.trl: the KL term inside TRL's GRPO/RLOO trainers (tiny random GPT-2s, CPU, float64).

1. The integrated term's gradient (trainer loss − the same loss at β = 0) equals β·∇ mean kl_surrogate
   on the same batch, computed from the two models' full logits (the hidden-state path never forms
   them); TRL's own loss scored through lmkl's shared head has TRL's gradient to float32 rounding.
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
from lmkl.integrations.trl.mixin import REF_HIDDEN
from lmkl.integrations.trl.shared_head import SharedPolicyHead, shared_policy_head
from lmkl.kl import kl_surrogate, row_stats_from_hidden, surrogate_from_stats, token_stats
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

    # TRL's own loss, scored by its own fused head, and the same loss scored by lmkl's shared head
    # (kl_beta = 0: the KL term is 0): the policy's log-probs now come from lmkl's pass (float64 here),
    # TRL's kernel accumulates in float32, so the two agree to float32 rounding (~1e-7 relative; 1e-5
    # allowed), not bit for bit.
    # (Advantages drawn at random so that TRL's own loss has a gradient; the KL term ignores them.)
    inputs["advantages"] = torch.randn(inputs["advantages"].shape, generator=torch.Generator().manual_seed(1), dtype=inputs["advantages"].dtype)
    g_trl = _grads(model, TRLTrainer._compute_loss(tr, model, inputs))
    tr.kl_beta = 0.0
    g_shared = _grads(model, tr._compute_loss(model, inputs))
    tr.kl_beta = beta
    assert float(g_trl.abs().max()) > 1e-3
    torch.testing.assert_close(g_shared, g_trl, rtol=0, atol=1e-5 * float(g_trl.abs().max()))
    logits_q = tr.kl_ref_model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau
    # GRPO is on-policy here (no old log-probs: weight 1 exactly); RLOO's weight exp(Σ log p − old log p)
    # compares lmkl's float64 log-probs with the rollout's float32 ones from TRL's kernel: 1 ± ~1e-6.
    tol = 1e-9 if kind == "grpo" else 1e-5
    for form in KL_GRADIENTS:
        tr.kl_gradient = form
        g_term = _grads(model, tr._compute_loss(model, inputs)) - g_shared
        logits_p = model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau  # full [B, T, V]
        g_ref = _grads(model, beta * kl_surrogate(logits_p, logits_q.detach(), tokens, mask, form).mean())
        assert float(g_ref.abs().max()) > 1e-3  # the models differ: a real gradient, not two zeros
        # float64 throughout; the term is the difference of two gradients of size ~1, so rounding is
        # ~1e-14 (and the weight's, above, for RLOO).
        torch.testing.assert_close(g_term, g_ref, rtol=0, atol=tol * float(g_ref.abs().max()))
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
    tr.kl_beta = 0.0
    g_shared = _grads(model, tr._compute_loss(model, inputs))
    tr.kl_beta = beta
    g_term = _grads(model, tr._compute_loss(model, inputs)) - g_shared
    logits_p = model(input_ids=ids, attention_mask=attn).logits[:, -T - 1 : -1] / tau
    stats = token_stats(logits_p, logits_q.detach(), tokens, mask)
    g_ref = _grads(model, beta * surrogate_from_stats(stats, "rb_causal", weights=weights).mean())
    # TRL's log-probs are float32 (its kernel accumulates in fp32): RLOO's log-weight, a float32 sum of
    # 8 terms of total size ~20, carries ~2e-6 rounding, so 1e-5 relative; without the weights the
    # gradient would be off by ~|shift| = 0.2 relative.
    torch.testing.assert_close(g_term, g_ref, rtol=0, atol=1e-5 * float(g_ref.abs().max()))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_shared_head_gives_trl_its_log_probs_and_entropies(kind, dirs, tmp_path):
    """TRL's per-token log-probs and entropies from lmkl's shared head equal those of TRL's own fused
    head (float32 inside: 1e-5), padding positions included (0), for one and for several micro-batches."""
    p_dir, q_dir = dirs
    _, _, RBTrainer = KINDS[kind]
    args = _config(kind, tmp_path, beta=0.1, temperature=0.7)
    tr = RBTrainer(_load(p_dir), reward, args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
                   processing_class=AutoTokenizer.from_pretrained(p_dir), ref_model=_load(q_dir))  # fmt: skip
    inputs = tr._generate_and_score_completions([{"prompt": s} for s in PROMPTS[:2] for _ in range(2)])
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    T = inputs["completion_ids"].shape[1]
    w_q = tr.kl_ref_model.get_output_embeddings().weight
    with torch.no_grad():
        want = tr._get_per_token_logps_and_entropies(tr.model, ids, attn, T, compute_entropy=True)[:2]
        for micro in (None, 3):  # one forward; two (3 + 1 sequences)
            head = SharedPolicyHead(inputs[REF_HIDDEN], w_q, inputs["completion_ids"], inputs["completion_mask"],
                                    inputs["prompt_ids"].shape[1])  # fmt: skip
            tr._kl_head = head
            with shared_policy_head(head):
                got = tr._get_per_token_logps_and_entropies(tr.model, ids, attn, T, batch_size=micro, compute_entropy=True)[:2]
            tr._kl_head = None
            assert head.next_sequence == ids.shape[0] and head.stats().kl.abs().sum() > 0
            for g, w in zip(got, want):
                torch.testing.assert_close(g.double(), w.double(), rtol=0, atol=1e-5)


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


@pytest.mark.parametrize("layout", ["all positions", "compact"])
def test_shared_head_maps_both_of_trls_row_layouts(layout):
    """TRL hands its fused head every position of a micro-batch (CPU) or only the valid completion
    positions (Triton devices, "compact"); either way the shared head scores exactly the completion
    rows, returns their log-probs at those rows (0 elsewhere) and assembles the same [B, T] stats."""
    g = torch.Generator().manual_seed(0)
    B, P, T, H, V = 2, 2, 3, 4, 5  # sequences, prompt width, completion positions, hidden, vocabulary
    mask = torch.tensor([[True, True, False], [True, False, False]])
    completion = torch.randint(0, V, (B, T), generator=g)
    h_q, w_q, w_p = torch.randn(B, T, H, generator=g), torch.randn(V, H, generator=g), torch.randn(V, H, generator=g)
    h_p = torch.randn(B, T, H, generator=g)  # the policy's states at the completion positions
    if layout == "compact":
        hidden, labels, rows = h_p[mask], completion[mask], torch.arange(int(mask.sum()))
    else:  # [B·(P+T−1), H]: completion token t of sequence i at row i·(P+T−1) + P−1+t; labels 0 elsewhere
        width = P + T - 1
        hidden, labels = torch.randn(B * width, H, generator=g), torch.zeros(B * width, dtype=torch.long)
        i, t = mask.nonzero(as_tuple=True)
        rows = i * width + P - 1 + t
        hidden[rows], labels[rows] = h_p[mask], completion[mask]
    head = SharedPolicyHead(h_q, w_q, completion, mask.long(), P)
    log_probs, entropy, *rest = head.apply(hidden, w_p, None, labels, 1.0, 0, None, 1.0, ("log_probs", "entropy"))
    want = row_stats_from_hidden(h_p[mask], w_p, h_q[mask], w_q, completion[mask])
    torch.testing.assert_close(log_probs[rows], want[0], rtol=0, atol=0)
    torch.testing.assert_close(entropy[rows], want[3], rtol=0, atol=0)
    others = torch.ones(hidden.shape[0], dtype=torch.bool)
    others[rows] = False
    assert not log_probs[others].any() and rest == [None, None, None]
    stats = head.stats()
    torch.testing.assert_close(stats.kl[mask], want[2], rtol=0, atol=0)
    assert not stats.kl[~mask].any()
    with pytest.raises(RuntimeError, match="line up"):  # tokens that are not the completion's
        SharedPolicyHead(h_q, w_q, completion, mask.long(), P).apply(
            hidden, w_p, None, (labels + 1) % V if layout == "compact" else labels.roll(1), 1.0, 0, None, 1.0, ("log_probs",)
        )
