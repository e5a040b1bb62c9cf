"""Rows run after their prompts into fixed-size key/value tensors, then extended token by token.

``prefill`` runs every row's context after its prompt and keeps all keys/values in tensors
with room for what comes next; ``Prefilled.advance`` runs new tokens (the next decoded token,
or candidate labels) after them, writing their keys/values in place. Shapes and addresses
stay fixed from one step to the next, so a decoding step can be replayed from a CUDA graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from engine.forward.decoder import Past, causal_mask, logits, run
from engine.forward.past import gather
from engine.forward.rows import Placed, Targets, place

if TYPE_CHECKING:
    from engine.model.host import ModelHost


def data_hidden(host: ModelHost, past: Past, past_valid: torch.Tensor,
                placed: Placed) -> torch.Tensor:
    """Hidden states of placed rows run after a (gathered) past."""
    mask = causal_mask(placed.valid, past_valid)
    hidden, _ = run(host, past, mask, placed.positions, ids=placed.ids)
    return hidden


def token_logprobs(host: ModelHost, hidden: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Log-probability of each target token, from the hidden state before it (float32).

    Only those positions go through the output head, which saves the vocabulary projection
    everywhere else.
    """
    flat = hidden.reshape(-1, hidden.shape[-1]).index_select(
        0, targets.gather.to(hidden.device))
    return -F.cross_entropy(logits(host, flat), targets.tokens, reduction="none")


@dataclass
class Prefilled:
    """Keys/values of a batch in fixed-size tensors: which columns hold real tokens, each row's
    next position, and how many columns are written."""

    past: Past
    valid: torch.Tensor
    next_pos: torch.Tensor
    filled: int

    @property
    def batch(self) -> int:
        return int(self.valid.shape[0])

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])

    def select(self, rows: torch.Tensor) -> Prefilled:
        """A new state holding (or repeating) only ``rows`` of this one."""
        past = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.past]
        return Prefilled(past, self.valid.index_select(0, rows),
                         self.next_pos.index_select(0, rows), self.filled)

    def take(self, other: Prefilled, at: int) -> None:
        """Copy every row of ``other`` into this state's rows from ``at`` on, each row's
        valid columns packed to the left in order, in place.

        A row's keys carry their own positions and masks count a row's valid keys, not
        columns, so packing changes no result; it drops the gaps that rows joining at other
        widths leave, so a batch that keeps taking rows does not keep growing.
        """
        packed = torch.sort((~other.valid).to(torch.uint8), dim=1, stable=True).indices
        count = int(other.valid.sum(dim=1).max())
        cols, rows = packed[:, :count], slice(at, at + other.batch)
        for (k, v), (ok, ov) in zip(self.past, other.past, strict=True):
            index = cols.to(ok.device)[:, None, :, None].expand(-1, ok.shape[1], -1,
                                                               ok.shape[3])
            k[rows, :, :count].copy_(ok.gather(2, index))
            v[rows, :, :count].copy_(ov.gather(2, index))
        self.valid[rows, :count] = other.valid.gather(1, cols)
        self.next_pos[rows] = other.next_pos
        self.filled = max(self.filled, count)

    def advance(self, host: ModelHost, ids: torch.Tensor, valid: torch.Tensor, cols: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``ids`` (batch, W) into columns ``cols`` (W,); return their hidden states.

        A new token sees the valid columns before it; right-padded new tokens (``valid``
        False) are seen by nobody. Everything stays on the device (no host sync). Given
        ``positions``, the state's next positions are left alone, so the call can be repeated
        with the same result (what a CUDA graph's warm-up does).
        """
        self.valid.index_copy_(1, cols, valid)
        columns = torch.arange(self.width, device=cols.device)
        later = columns.unsqueeze(0) > cols.unsqueeze(1)
        mask = (self.valid.unsqueeze(1) & ~later.unsqueeze(0)).unsqueeze(1)
        step = positions is None
        if step:
            positions = self.next_pos.unsqueeze(1) + torch.arange(ids.shape[1], device=ids.device)
        hidden, _ = run(host, self.past, mask, positions, ids=ids, write_at=cols)
        if step:
            self.next_pos.add_(valid.sum(dim=1))
        return hidden


def empty_state(host: ModelHost, batch: int, width: int) -> Prefilled:
    """A state of ``batch`` rows and ``width`` columns with nothing written."""
    shape = (batch, host.num_kv_heads, width, host.head_dim)
    past = [(torch.zeros(shape, device=device, dtype=host.dtype),
             torch.zeros(shape, device=device, dtype=host.dtype))
            for device in host.layer_devices]
    return Prefilled(past, torch.zeros((batch, width), dtype=torch.bool, device=host.device),
                     torch.zeros(batch, dtype=torch.long, device=host.device), 0)


def prefill(host: ModelHost, packed: Sequence[torch.Tensor | None], row_slot: Sequence[int],
            sequences: Sequence[Sequence[int]], room: int, *,
            into: Callable[[int, int], Prefilled] | None = None
            ) -> tuple[Prefilled, torch.Tensor]:
    """Run each row's ids after its prompt, with ``room`` free columns after the longest row;
    return the state and each row's last hidden state. ``into(batch, width)`` supplies a
    cleared state of at least that width (default: a new one)."""
    past, past_valid, lengths = gather(host, packed, row_slot)
    offset = past_valid.shape[1]
    placed = place(sequences, lengths.tolist(), pad_id=0)
    size = offset + placed.ids.shape[1]
    state = (into or partial(empty_state, host))(len(sequences), size + room)
    for (k, v), (pk, pv) in zip(state.past, past, strict=True):
        k[:, :, :offset].copy_(pk)
        v[:, :, :offset].copy_(pv)
    state.valid[:, :offset] = past_valid
    state.next_pos.copy_(lengths)
    device = host.device
    cols = torch.arange(offset, size, device=device)
    hidden = state.advance(host, placed.ids.to(device), placed.valid.to(device), cols)
    state.filled = size
    last = placed.valid.sum(dim=1).to(device) - 1
    return state, hidden[torch.arange(len(sequences), device=device), last]
