"""Prompt methods, one module each (as PEFT keeps ``tuners/<method>/``), behind the protocol in
``engine/methods/base.py``. A new method is one new module and one line in ``_MODULES``.

This module is torch-free (the catalogue, the protocol and the desktop read the names); a
method's module is imported when it is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.errors import PromptbankError

if TYPE_CHECKING:
    from engine.methods.base import PromptMethod

_MODULES = {"prompt": ("engine.methods.prompt", "PromptTuning"),
            "prefix": ("engine.methods.prefix", "PrefixTuning")}
#: The method names, in the order the CLI and desktop offer them.
METHODS: tuple[str, ...] = tuple(_MODULES)
_LOADED: dict[str, PromptMethod] = {}


def get_method(name: str) -> PromptMethod:
    """The method called ``name``, or a clear error naming the known ones."""
    if name not in _LOADED:
        if name not in _MODULES:
            raise PromptbankError(f"Unknown prompt method '{name}'.",
                                  hint=f"Use one of: {', '.join(METHODS)}.")
        module, cls = _MODULES[name]
        _LOADED[name] = getattr(importlib.import_module(module), cls)()
    return _LOADED[name]


def by_peft_type(peft_type: str) -> PromptMethod | None:
    """The method that PEFT calls ``peft_type`` (None if none of ours)."""
    return next((m for m in map(get_method, METHODS) if m.peft_type == peft_type), None)
