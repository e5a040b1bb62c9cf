"""What a run trains and evaluates on: tokenised rows, evaluation sets, replay, batch order.

Rows are tokenised in chunks with progress (``engine.model.chat``), so a large dataset shows it is
moving before the first step, and an over-long row is truncated (and counted) instead of
costing memory.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.library.readers import Example, examples_sha256
from engine.model.chat import OnRows, Row

if TYPE_CHECKING:
    from engine.model.host import ModelHost


@dataclass
class EvalSet:
    """Evaluation examples with a name and the hash evaluations are stored under."""

    name: str
    examples: list[Example]

    @property
    def inputs(self) -> list[str]:
        return [e.input for e in self.examples]

    @property
    def outputs(self) -> list[str]:
        return [e.output for e in self.examples]

    @property
    def sha256(self) -> str:
        return examples_sha256(self.examples)

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class SourcesEval:
    """The evaluation sets of a universal prompt's source tasks, one per task name."""

    name: str
    parts: dict[str, EvalSet]

    @property
    def sha256(self) -> str:
        return examples_sha256([e for part in self.parts.values() for e in part.examples])

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts.values())


def eval_set(name: str, examples: Sequence[Example], size: int, seed: int) -> EvalSet:
    """At most ``size`` examples, a seeded sample when there are more (in their order)."""
    examples = list(examples)
    if len(examples) > size:
        keep = set(random.Random(seed).sample(range(len(examples)), size))
        examples = [e for i, e in enumerate(examples) if i in keep]
    return EvalSet(name, examples)


def encode(host: ModelHost, examples: Sequence[Example], *, template: str | None, max_length: int,
           on_rows: OnRows | None = None) -> list[Row]:
    """Training rows of examples through the model's chat format."""
    return host.chat.rows([(e.input, e.output) for e in examples], template=template,
                          max_length=max_length, on_rows=on_rows)


def replay_sample(old: list, new_count: int, replay: float, seed: int) -> list:
    """Earlier examples making up ``replay`` of the pool (as far as there are enough)."""
    if not replay or not old:
        return []
    want = min(len(old), round(new_count * replay / (1.0 - replay)))
    return random.Random(seed).sample(old, want)


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int,
                         *, group: int = 32) -> list[list[int]]:
    """Batches of row indices for one epoch: shuffled, sorted by length within groups of
    ``group`` batches (so a batch wastes little padding), batch order shuffled again.

    Deterministic in ``seed`` so a resumed run sees the same order.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def capped_order(lengths: Sequence[int], groups: Sequence[int], batch_size: int, seed: int,
                 cap: int) -> list[list[int]]:
    """One epoch's batches over rows of several groups (source tasks): each group gives at
    most ``cap`` of its rows (a seeded sample), so groups are drawn in proportion to their
    size up to the cap, and the batches mix them (``length_grouped_order``)."""
    rng = random.Random(seed)
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    chosen: list[int] = []
    for group in sorted(members):
        rows = members[group]
        chosen += sorted(rng.sample(rows, cap)) if len(rows) > cap else rows
    batches = length_grouped_order([lengths[i] for i in chosen], batch_size, seed)
    return [[chosen[j] for j in batch] for batch in batches]
