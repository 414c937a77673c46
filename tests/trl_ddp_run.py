"""Two optimizer steps of RBRLOOTrainer on fixed data; run by test_integrations_trl_ddp.py, once in one
process and once under `accelerate launch --num_processes 2` (CPU, gloo), to compare the updates.

    python tests/trl_ddp_run.py MODEL_DIR OUT.pt GRAD_ACCUM

The completions are a deterministic function of (prompt, its occurrence in the local batch) instead
of samples, so both launches train on the same 8 sequences: 4 prompts × 2 per step, 2 PPO iterations
on them (the second off-policy: TRL's importance weights enter), plain SGD (Adam's first steps would
hide a gradient's scale). One process: micro-batches of 4 with gradient accumulation 2; two
processes: 4 each, no accumulation. Rank 0 saves the final parameters and the logged kl/* values.
"""

from __future__ import annotations

import sys
import zlib

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import RLOOConfig

from lmkl.integrations.trl import RBRLOOTrainer

# Equal token lengths (7 with the test tokenizer): TRL passes no position ids, so left padding would
# shift a prompt's positions and make its outputs depend on which prompts share its batch.
PROMPTS = ["The acting was", "It was fine:", "I loved it", "Boring and slow"]


def reward(completions, **_):
    return [sum(ch in "aeiou" for ch in c) / 4 for c in completions]


class FixedCompletions(RBRLOOTrainer):
    """Completions drawn from a generator seeded by (prompt, occurrence): the same in any launch."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
        eos, vocab = self._tokenizer.eos_token_id, len(self._tokenizer)
        if len({len(ids) for ids in prompt_ids}) != 1:
            raise ValueError("PROMPTS: expected prompts of one token length (no left padding)")
        seen: dict[tuple[int, ...], int] = {}
        out = []
        for ids in prompt_ids:
            key = tuple(ids)
            k = seen[key] = seen.get(key, -1) + 1
            g = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()) * 8 + k)
            n = int(torch.randint(2, self.max_completion_length + 1, (), generator=g))
            tokens = torch.randint(2, vocab, (n,), generator=g).tolist()  # 0, 1: EOS, PAD
            out.append([*tokens[:-1], eos] if n < self.max_completion_length else tokens)
        return out


def main(model_dir: str, out: str, grad_accum: int) -> None:
    args = RLOOConfig(
        output_dir=out + ".trainer", per_device_train_batch_size=4, gradient_accumulation_steps=grad_accum,
        num_generations=2, num_iterations=2, max_completion_length=8, max_steps=2, optim="sgd", learning_rate=0.5,
        lr_scheduler_type="constant", beta=0.2, bf16=False, disable_dropout=True, seed=0, report_to=[],
        save_strategy="no", logging_steps=1, use_cpu=True,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ref = AutoModelForCausalLM.from_pretrained(model_dir + "_ref")
    tr = FixedCompletions(
        model, reward, args=args, train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=AutoTokenizer.from_pretrained(model_dir), ref_model=ref,
    )  # fmt: skip
    tr.train()
    if tr.accelerator.is_main_process:
        kl = {k: [h[k] for h in tr.state.log_history if k in h] for k in ("kl/mc", "kl/rb", "kl/k3")}
        params = {n: p.detach().clone() for n, p in tr.accelerator.unwrap_model(tr.model).named_parameters()}
        torch.save({"params": params, "kl": kl, "processes": tr.accelerator.num_processes}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
