"""Prompt methods, one module each (as PEFT keeps ``tuners/<method>/``), behind the protocol in
``engine/methods/base.py``. A new method is one new module here and nothing elsewhere: its
file name is its name, found without importing it.

This module is torch-free (the catalogue and the protocol read the names); a method's module
is imported when it is first used. The desktop learns the methods from the worker's ``hello``
(``describe_methods``), so it never imports this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING

from engine.api.session import MethodInfo
from engine.errors import PromptbankError

if TYPE_CHECKING:
    from engine.methods.base import PromptMethod

_NOT_METHODS = {"base"}
#: The method names, sorted: the order the CLI and desktop offer them.
METHODS: tuple[str, ...] = tuple(sorted(
    m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_METHODS))
_LOADED: dict[str, PromptMethod] = {}


def get_method(name: str) -> PromptMethod:
    """The method called ``name``, or a clear error naming the known ones."""
    if name not in _LOADED:
        if name not in METHODS:
            raise PromptbankError(f"Unknown prompt method '{name}'.",
                                  hint=f"Use one of: {', '.join(METHODS)}.")
        _LOADED[name] = _method_in(importlib.import_module(f"{__name__}.{name}"))
    return _LOADED[name]


def _method_in(module: ModuleType) -> PromptMethod:
    # The class the module defines whose ``name`` is the module's own (base is not imported
    # here: it needs torch, and this module must not).
    name = module.__name__.rpartition(".")[2]
    found = [v for v in vars(module).values() if isinstance(v, type)
             and v.__module__ == module.__name__ and getattr(v, "name", None) == name]
    if len(found) != 1:
        raise PromptbankError(f"{module.__name__} must define one prompt method named "
                              f"'{name}' (it defines {len(found)}).")
    return found[0]()


def by_peft_type(peft_type: str) -> PromptMethod | None:
    """The method that PEFT calls ``peft_type`` (None if none of ours)."""
    return next((m for m in map(get_method, METHODS) if m.peft_type == peft_type), None)


def describe_methods() -> list[MethodInfo]:
    """Every method as the desktop shows it: name, summary, tensor layout, default rate."""
    return [get_method(name).info() for name in METHODS]
