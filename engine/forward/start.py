"""What each row of a pass starts from: a prompt's keys/values and a shared head of tokens.

Every context of a task begins with the same tokens (the chat template's start and the task
template before the input). With causal attention those tokens never see what follows, so
their keys/values after a given prompt are the same for every row: they are computed once
with the prompt (batch of one) and the rows run only what comes after. The loss, the scores
and the generated tokens are exactly those of the whole rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(eq=False)
class Start:
    """A prompt's packed keys/values (None: no prompt), and the same followed by ``head``."""

    bare: torch.Tensor | None
    head: list[int]
    headed: torch.Tensor | None = None

    def fits(self, ids: Sequence[int]) -> bool:
        """Whether a row of ``ids`` can start after the head (it begins with it and has at
        least one token of its own)."""
        size = len(self.head)
        return (self.headed is not None and size > 0 and len(ids) > size
                and list(ids[:size]) == self.head)


def assign(starts: Sequence[Start], row_start: Sequence[int],
           sequences: Sequence[Sequence[int]]
           ) -> tuple[list[torch.Tensor | None], list[int], list[list[int]]]:
    """The distinct pasts of a batch, each row's index into them, and each row's ids after
    what its past already holds."""
    slots: dict[tuple[int, bool], int] = {}
    packed: list[torch.Tensor | None] = []
    row_slot: list[int] = []
    rest: list[list[int]] = []
    for index, ids in zip(row_start, sequences, strict=True):
        start = starts[index]
        headed = start.fits(ids)
        key = (id(start), headed)
        if key not in slots:
            slots[key] = len(packed)
            packed.append(start.headed if headed else start.bare)
        row_slot.append(slots[key])
        rest.append(list(ids[len(start.head):] if headed else ids))
    return packed, row_slot, rest
