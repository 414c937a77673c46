"""RBRLOOTrainer under accelerate with 2 processes (CPU, gloo) makes the update of 1 process on the same data.

tests/trl_ddp_run.py trains 2 SGD steps (2 PPO iterations on one batch of 8 fixed sequences, the
second off-policy) with lmkl's rb_causal term: once here in this process (micro-batches of 4, gradient
accumulation 2), once under `accelerate launch --num_processes 2` (4 sequences per process, DDP's
gradient all-reduce). The logged KL and the final parameters must agree to float32 rounding.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmkl.models.testing import build_tiny_gpt2, build_tiny_tokenizer

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_make_the_one_process_update(tmp_path):
    tok = build_tiny_tokenizer(tmp_path / "tok")
    model = build_tiny_gpt2(tmp_path / "m", 300, seed=0, tokenizer_dir=tok, init_std=0.3, eos_boost=2.0)
    build_tiny_gpt2(tmp_path / "m_ref", 300, seed=1, tokenizer_dir=tok, init_std=0.3, eos_boost=2.0)
    accelerate = Path(sys.executable).parent / "accelerate"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(HERE / "trl_ddp_run.py"), str(model), str(tmp_path / "two.pt"), "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    sys.path.insert(0, str(HERE))
    try:
        from trl_ddp_run import main
    finally:
        sys.path.remove(str(HERE))
    main(str(model), str(tmp_path / "one.pt"), 2)

    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert (one["processes"], two["processes"]) == (1, 2)
    start = {n: p.detach() for n, p in torch.nn.Module.named_parameters(_load(model))}
    moved = max(float((one["params"][n] - start[n]).abs().max()) for n in start)
    diff = max(float((one["params"][n] - two["params"][n]).abs().max()) for n in start)
    print(f"\n2 processes vs 1: max |Δθ| = {diff:.3g} after an update of max |θ − θ0| = {moved:.3g}")
    print(f"kl/rb per step: 1 process {one['kl']['kl/rb']}, 2 processes {two['kl']['kl/rb']}")
    assert moved > 1e-2  # the steps did something
    # float32 parameters of size ~1: the two runs sum the same gradients in another order (all-reduce
    # vs accumulation), ~1e-7 apart; a missing or doubled term would be ~`moved`.
    assert diff < 1e-5
    for key in ("kl/mc", "kl/rb", "kl/k3"):
        torch.testing.assert_close(torch.tensor(one["kl"][key]), torch.tensor(two["kl"][key]), rtol=1e-5, atol=1e-5)


def _load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)
