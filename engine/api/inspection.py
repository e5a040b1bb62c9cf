"""Looking inside prompts: nearest tokens and task similarity.

Torch-free: each op is declared beside the payloads it answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.api.payload import Payload
from engine.api.spec import (
    VERSION_ARG,
    Arg,
    OpSpec,
    task_arg,
)


@dataclass
class NearTokens(Payload):
    """The answer to ``nearest_tokens``: per virtual token its k nearest vocabulary tokens
    (``{id, token, score}``)."""

    task: str = ""
    version: int = 0
    method: str = ""
    k: int = 0
    tokens: list[list[dict]] = field(default_factory=list)


@dataclass
class Similarity(Payload):
    """The answer to ``similarity``: a task-by-task cosine matrix and the tasks left out."""

    method: str = ""
    tasks: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    pooling: str = "mean"
    skipped: list[dict] = field(default_factory=list)


SPECS = (
    OpSpec("nearest_tokens", "Per virtual token of a `prompt` version, the k nearest "
           "vocabulary tokens by cosine.",
           (task_arg(), VERSION_ARG, Arg("k", "int", default=5, minimum=1)),
           result=NearTokens),
    OpSpec("similarity", "Task-by-task cosine similarity of prompts of one method (SPoT).",
           (Arg("tasks", "list", doc="task names (default: all with a version)"),
            Arg("method", "str", default="prompt", doc="a prompt method"),
            Arg("pooling", "str", default="mean", choices=("mean", "tokens"))),
           result=Similarity),
)
PROGRESS = ()
