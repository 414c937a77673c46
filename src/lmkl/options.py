"""Options declared once: a dataclass field with its default and its help text.

    @dataclass
    class TrainOptions:
        steps: int = option(100, "updates; re-running with a larger value continues the run")

The Hydra schema (`lmkl.stages.pipeline_config` registers the dataclasses with Hydra's ConfigStore),
the YAML defaults (the primary configs hold none of their own: they start from the schema) and
`lmkl <stage> --help` (`option_rows`) all read these fields. No dependency beyond the standard library.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any


def option(default: Any, help: str) -> Any:
    """A dataclass field with `default` and `help` (in the field's metadata). Mutable defaults (lists,
    dicts) get a factory returning a fresh copy, so instances never share them."""
    if not help:
        raise ValueError("help: every option needs its help text")
    meta = {"help": help}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (MISSING when it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def option_rows(schema: type, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """(dotted key, default, help) of every leaf option of a dataclass, nested sections included;
    a section (a field whose default is a dataclass) contributes its own fields, prefixed."""
    for f in dataclasses.fields(schema):
        default = default_of(f)
        if dataclasses.is_dataclass(default):
            yield from option_rows(type(default), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", default, f.metadata.get("help", "")
