"""Prefilled.take: rows moved between decoding workspaces keep their keys in order and lose
the gaps between them."""

from __future__ import annotations

import torch

from engine.forward.state import Prefilled


def test_take_packs_each_rows_valid_columns_to_the_left():
    keys = torch.arange(12, dtype=torch.float32).reshape(2, 1, 6, 1)
    valid = torch.tensor([[1, 0, 0, 1, 1, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    source = Prefilled([(keys, keys + 100)], valid, torch.tensor([7, 4]), filled=5)
    shape = (3, 1, 8, 1)
    target = Prefilled([(torch.zeros(shape), torch.zeros(shape))],
                       torch.zeros((3, 8), dtype=torch.bool), torch.zeros(3, dtype=torch.long), 0)
    target.take(source, 1)
    assert target.filled == 3  # the longest row's keys, not the source's five columns
    assert target.valid.int().tolist() == [[0] * 8, [1, 1, 1, 0, 0, 0, 0, 0],
                                           [1, 1, 0, 0, 0, 0, 0, 0]]
    k, v = target.past[0]
    assert k[1, 0, :3, 0].tolist() == [0.0, 3.0, 4.0]
    assert k[2, 0, :2, 0].tolist() == [7.0, 8.0]
    assert v[2, 0, :2, 0].tolist() == [107.0, 108.0]
    assert target.next_pos.tolist() == [0, 7, 4]
