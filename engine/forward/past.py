"""Several prompts' keys/values side by side as one batch's past.

Each row's prompt sits right-aligned in a past as wide as the longest prompt, with the unused
slots masked, so rows of different tasks, versions, lengths or none share one pass. One prompt
for the whole batch is broadcast instead (views, no copies); gradients flow back either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from engine.forward.decoder import Past

if TYPE_CHECKING:
    from engine.model.host import ModelHost


def layout(lengths: Sequence[int], row_slot: Sequence[int],
           width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """On the host: the (batch, width) validity of a past whose slots hold prompts of
    ``lengths`` right-aligned, and each row's prompt length."""
    width = max([*lengths, width or 0])
    index = torch.as_tensor(list(row_slot), dtype=torch.long)
    row_lengths = torch.as_tensor(list(lengths), dtype=torch.long)[index]
    valid = torch.arange(width).unsqueeze(0) >= width - row_lengths.unsqueeze(1)
    return valid, row_lengths


def stack(host: ModelHost, packed: Sequence[torch.Tensor | None], row_slot: torch.Tensor,
          width: int) -> Past:
    """On the device: the per-layer past of a batch whose row ``i`` starts from
    ``packed[row_slot[i]]`` (None: no prompt), right-aligned in ``width`` slots."""
    batch = row_slot.shape[0]
    if len(packed) == 1 and packed[0] is not None and packed[0].shape[3] == width:
        return [(layer[0].unsqueeze(0).expand(batch, -1, -1, -1),
                 layer[1].unsqueeze(0).expand(batch, -1, -1, -1)) for layer in packed[0]]
    shape = (host.num_layers, 2, host.num_kv_heads, width, host.head_dim)
    blank = torch.zeros(shape, device=host.device, dtype=host.dtype)
    stacked = torch.stack([blank if p is None else F.pad(p, (0, 0, width - p.shape[3], 0))
                           for p in packed])
    rows = stacked.index_select(0, row_slot)
    return [(rows[:, i, 0], rows[:, i, 1]) for i in range(host.num_layers)]


def gather(host: ModelHost, packed: Sequence[torch.Tensor | None], row_slot: Sequence[int],
           width: int | None = None) -> tuple[Past, torch.Tensor, torch.Tensor]:
    """``stack`` and ``layout`` together: the past, its validity (on the device) and each
    row's prompt length (on the host)."""
    lengths = [0 if p is None else int(p.shape[3]) for p in packed]
    valid, row_lengths = layout(lengths, row_slot, width)
    index = torch.as_tensor(list(row_slot), dtype=torch.long, device=host.device)
    past = stack(host, packed, index, valid.shape[1])
    return past, valid.to(host.device), row_lengths
