"""A new run's settings from what the user gave: the defaults of the mode the task's size picks
(few-shot for a small task), and, for a start from another prompt (``task:NAME`` or
``universal:NAME``), that prompt's method and length unless the user chose them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import PromptbankError
from engine.training.config import TrainConfig, for_examples

if TYPE_CHECKING:
    from engine.library import Library


def training_examples(library: Library, task: str) -> int:
    """How many examples a task's training may use (its rows outside separate eval files)."""
    return sum(d.rows for d in library.list_datasets(task) if d.role == "train")


def settings_for(library: Library, task: str, given: dict) -> TrainConfig:
    """The settings of a new run of ``task`` from the fields the user gave."""
    given = dict(given)
    init = str(given.get("init") or "")
    if init.startswith(("task:", "universal:")) and not {"method", "length"} <= set(given):
        try:
            version = library.get_version(init.split(":", 1)[1])
        except PromptbankError:
            pass  # the init itself then says what is missing
        else:
            given.setdefault("method", version.method)
            given.setdefault("length", version.length)
    return for_examples(given, training_examples(library, task))
