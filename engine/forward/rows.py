"""Rows of token ids laid out for one pass after their prompts (built on the host).

Rows are right-padded: padding sits after a row's last token, where no real token looks at
it, and every row's positions count on from its own prompt's length. A padded row therefore
computes exactly what it computes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Placed:
    """Right-padded token ids with their validity and position ids, (batch, width) each."""

    ids: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor

    @property
    def tokens(self) -> int:
        """Real (non-padding) tokens."""
        return int(self.valid.sum())

    def to(self, device) -> Placed:
        return Placed(self.ids.to(device), self.valid.to(device), self.positions.to(device))


def place(sequences: Sequence[Sequence[int]], past_lengths: Sequence[int], *, pad_id: int,
          width: int | None = None) -> Placed:
    """Lay ``sequences`` out after pasts of ``past_lengths`` tokens; ``width`` pads further."""
    width = max([len(s) for s in sequences] + [width or 1])
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(sequences), width), dtype=torch.bool)
    positions = torch.zeros((len(sequences), width), dtype=torch.long)
    steps = torch.arange(width)
    for i, (seq, offset) in enumerate(zip(sequences, past_lengths, strict=True)):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        valid[i, : len(seq)] = True
        positions[i] = offset + steps
    return Placed(ids, valid, positions)


@dataclass
class Targets:
    """The tokens a loss is taken on: where their logits come from in the flattened
    (batch × width) hidden states, the token, its weight, and its group (task or row)."""

    gather: torch.Tensor
    tokens: torch.Tensor
    weights: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return int(self.gather.shape[0])

    def to(self, device) -> Targets:
        return Targets(self.gather.to(device), self.tokens.to(device), self.weights.to(device),
                       self.groups.to(device))


def targets(sequences: Sequence[Sequence[int]], starts: Sequence[int], width: int, *,
            row_weights: Sequence[float] | None = None, row_groups: Sequence[int] | None = None,
            size: int | None = None) -> Targets:
    """Every token of a row from index ``starts[i]`` on is predicted from the position before
    it. ``size`` pads the list with weight-0 entries, so a pass keeps one shape."""
    gather: list[int] = []
    tokens: list[int] = []
    weights: list[float] = []
    groups: list[int] = []
    for i, (seq, start) in enumerate(zip(sequences, starts, strict=True)):
        span = range(max(start, 1), len(seq))
        gather += [i * width + j - 1 for j in span]
        tokens += [seq[j] for j in span]
        weights += [1.0 if row_weights is None else row_weights[i]] * len(span)
        groups += [i if row_groups is None else row_groups[i]] * len(span)
    extra = max(0, (size or 0) - len(gather))
    return Targets(torch.tensor(gather + [0] * extra, dtype=torch.long),
                   torch.tensor(tokens + [0] * extra, dtype=torch.long),
                   torch.tensor(weights + [0.0] * extra, dtype=torch.float32),
                   torch.tensor(groups + [0] * extra, dtype=torch.long))


def width_bucket(value: int) -> int:
    """``value`` rounded up to eight sizes per octave (multiples of 8 below 128, of 16 below
    256, ...): shapes repeat, and the padding stays under an eighth (or 8 tokens)."""
    size = 8
    while size * 16 <= value:
        size *= 2
    return bucket(value, size)


def bucket(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step`` (at least ``step``)."""
    return max(step, -(-value // step) * step)


def power_bucket(value: int, floor: int = 16) -> int:
    """``value`` rounded up to a power of two (at least ``floor``)."""
    size = floor
    while size < value:
        size *= 2
    return size
