"""Label scores: the log-likelihood of each candidate answer after each context.

Every context runs once; then all candidates of all rows run together after their row's
keys/values, so a row with k labels costs one context pass and k short continuations, and
labels sharing their first tokens are still told apart exactly. Training evaluations, serving,
``promptbank eval`` and batch apply all score through ``label_scores``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from engine.forward.decoder import logits
from engine.forward.past import gather
from engine.forward.rows import place, targets
from engine.forward.start import Start, assign
from engine.forward.state import data_hidden, prefill, token_logprobs
from engine.model.chat import Row

if TYPE_CHECKING:
    from engine.model.host import ModelHost


@torch.no_grad()
def label_scores(host: ModelHost, starts: Sequence[Start], row_start: Sequence[int],
                 contexts: Sequence[Sequence[int]],
                 candidates: Sequence[Sequence[Sequence[int]]]) -> list[list[float]]:
    """Summed log-probabilities of each row's candidate id sequences after its context."""
    packed, row_slot, rest = assign(starts, row_start, contexts)
    width = max(len(c) for cands in candidates for c in cands) - 1
    state, last = prefill(host, packed, row_slot, rest, room=max(width, 0))
    first = torch.log_softmax(logits(host, last), dim=-1)
    device = host.device
    owner = torch.tensor([i for i, cands in enumerate(candidates) for _ in cands], device=device)
    flat = [list(c) for cands in candidates for c in cands]
    heads = torch.tensor([c[0] for c in flat], device=device)
    totals = first[owner, heads].double()
    if width > 0:
        feed = torch.zeros((len(flat), width), dtype=torch.long)
        follow = torch.zeros((len(flat), width), dtype=torch.long)
        valid = torch.zeros((len(flat), width), dtype=torch.bool)
        for r, c in enumerate(flat):
            feed[r, : len(c) - 1] = torch.tensor(c[:-1])
            follow[r, : len(c) - 1] = torch.tensor(c[1:])
            valid[r, : len(c) - 1] = True
        feed, follow, valid = feed.to(device), follow.to(device), valid.to(device)
        sub = state.select(owner)
        cols = torch.arange(state.filled, state.filled + width, device=device)
        hidden = sub.advance(host, feed, valid, cols)
        logp = torch.log_softmax(logits(host, hidden), dim=-1)
        picked = logp.gather(-1, follow.unsqueeze(-1)).squeeze(-1) * valid
        totals += picked.sum(dim=1).double()
    values = totals.tolist()
    out: list[list[float]] = []
    pos = 0
    for cands in candidates:
        out.append(values[pos:pos + len(cands)])
        pos += len(cands)
    return out


@torch.no_grad()
def answer_logliks(host: ModelHost, starts: Sequence[Start], row_start: Sequence[int],
                   rows: Sequence[Row]) -> tuple[list[float], list[int]]:
    """Each row's summed answer log-probability (teacher-forced) and its answer length."""
    packed, row_slot, rest = assign(starts, row_start, [r.ids for r in rows])
    past, past_valid, lengths = gather(host, packed, row_slot)
    placed = place(rest, lengths.tolist(), pad_id=host.chat.pad_id)
    first = [len(s) - len(r.answer_ids) for s, r in zip(rest, rows, strict=True)]
    goal = targets(rest, first, placed.ids.shape[1])
    device = host.device
    hidden = data_hidden(host, past, past_valid, placed.to(device))
    logp = token_logprobs(host, hidden, goal.to(device))
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device)
    sums.index_add_(0, goal.groups.to(device), logp.double())
    return sums.tolist(), [len(r.answer_ids) for r in rows]
