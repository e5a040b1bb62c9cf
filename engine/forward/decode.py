"""Decoding prefilled rows token by token: greedy or nucleus sampling, stop strings, streaming.

Each step feeds one token per row into fixed-size key/value tensors (a workspace per batch
size and width), so on a GPU the step is replayed from a CUDA graph once that shape has been
seen a few times. Rows that finish stay in the batch until half of it is done; then the
rest move to a smaller workspace. Rows that arrive while a batch decodes (a server's
requests) join it between two steps, after their own prefill, instead of waiting for the
batch to end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from engine.forward.decoder import logits
from engine.forward.graphs import Graphs, Inputs
from engine.forward.rows import bucket
from engine.forward.state import Prefilled, empty_state

if TYPE_CHECKING:
    from engine.model.host import ModelHost

#: Streaming callback: (row index in the request, new text).
OnToken = Callable[[int, str], None]
#: Workspace widths are rounded up to this many columns, so shapes repeat across requests.
WIDTH_STEP = 128
WORKSPACES = 6


@dataclass
class Sampling:
    """How one row is decoded: length, temperature, nucleus, stop strings, seed."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


class Stream:
    """One row's generated tokens and text, its stop rules, and what it has streamed."""

    def __init__(self, tokenizer, sampling: Sampling, stop_ids: set[int], index: int,
                 on_token: OnToken | None,
                 should_stop: Callable[[], bool] | None = None,
                 on_finish: Callable[[Stream], None] | None = None) -> None:
        self.tokenizer, self.sampling, self.stop_ids = tokenizer, sampling, stop_ids
        self.index, self.on_token, self.should_stop = index, on_token, should_stop
        self.on_finish = on_finish
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.finish_reason = ""

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def push(self, token: int) -> bool:
        """Take the next token; return True when the row is finished."""
        if self.should_stop is not None and self.should_stop():
            return self._finish("cancelled")
        if token in self.stop_ids:
            return self._finish("eos")
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        hits = [self.text.find(s) for s in self.sampling.stop if s and s in self.text]
        if hits:
            self.text = self.text[: min(hits)]
            return self._finish("stop")
        if len(self.ids) >= self.sampling.max_new_tokens:
            return self._finish("length")
        self._send(self._safe_end())
        return False

    def _safe_end(self) -> int:
        """How much text can be streamed: not a half character, not a possible stop's start."""
        end = len(self.text.rstrip("\ufffd"))
        for stop in self.sampling.stop:
            for size in range(min(len(stop) - 1, end), 0, -1):
                if self.text[:end].endswith(stop[:size]):
                    end -= size
                    break
        return end

    def _send(self, end: int) -> None:
        if self.on_token is not None and end > self.sent:
            self.on_token(self.index, self.text[self.sent:end])
        self.sent = max(self.sent, end)

    def _finish(self, reason: str) -> bool:
        self.finish_reason = reason
        self._send(len(self.text))
        if self.on_finish is not None:
            self.on_finish(self)
        return True

    @property
    def room(self) -> int:
        """How many more tokens the row may take."""
        return self.sampling.max_new_tokens - len(self.ids)


@dataclass
class Joining:
    """Rows prefilled apart that join a running decode: their state (not a workspace), the
    hidden state after each row's context, and their streams."""

    state: Prefilled
    last: torch.Tensor
    streams: list[Stream]


#: Given the free places in a decoding batch, rows to join it now (or None).
Admit = Callable[[int], Joining | None]


def generator(sampling: Sampling, device: torch.device) -> torch.Generator | None:
    """A seeded random generator for a sampled row (None for greedy)."""
    if sampling.temperature <= 0:
        return None
    gen = torch.Generator(device=device)
    if sampling.seed is None:
        gen.seed()
    else:
        gen.manual_seed(sampling.seed)
    return gen


def pick(scores: torch.Tensor, samplings: Sequence[Sampling],
         generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Greedy for temperature 0, else nucleus sampling, row by row."""
    chosen = scores.argmax(dim=-1)
    for j, (sampling, gen) in enumerate(zip(samplings, generators, strict=True)):
        if gen is None:
            continue
        probs = torch.softmax(scores[j] / sampling.temperature, dim=-1)
        ordered, order = probs.sort(descending=True)
        drop = ordered.cumsum(0) - ordered >= sampling.top_p
        ordered[drop] = 0
        choice = torch.multinomial(ordered / ordered.sum(), 1, generator=gen)
        chosen[j] = order[choice[0]]
    return chosen


class Decoder:
    """Decoding steps over workspaces of fixed shape, replayed from CUDA graphs on a GPU."""

    def __init__(self, host: ModelHost, *, graphs: bool = True) -> None:
        self.host = host
        self.workspaces: OrderedDict[Hashable, Prefilled] = OrderedDict()
        self.graphs = Graphs(self._step_fn, host.device, enabled=graphs, warm=2,
                             limit=WORKSPACES)

    def workspace(self, batch: int, width: int) -> Prefilled:
        """The (cleared) workspace for ``batch`` rows and at least ``width`` columns."""
        key = (batch, bucket(width, WIDTH_STEP))
        state = self.workspaces.get(key)
        if state is None:
            state = empty_state(self.host, *key)
            self.workspaces[key] = state
            while len(self.workspaces) > WORKSPACES:
                old, _ = self.workspaces.popitem(last=False)
                self.graphs.forget(old)
        self.workspaces.move_to_end(key)
        state.valid.zero_()
        state.filled = 0
        return state

    def _step_fn(self, key: Hashable):
        state = self.workspaces[key]
        every = torch.ones((state.batch, 1), dtype=torch.bool, device=self.host.device)

        def step(inputs: Inputs) -> tuple[torch.Tensor]:
            hidden = state.advance(self.host, inputs["tokens"], every, inputs["cols"],
                                   inputs["positions"])
            return (logits(self.host, hidden[:, -1]),)

        return step

    def _regroup(self, parts: Sequence[Prefilled], room: int) -> Prefilled:
        """The workspace holding every row of ``parts`` in order (their columns packed), with
        ``room`` columns free after the longest.

        ``parts`` are copies (``Prefilled.select``): the workspace handed out may be the very
        tensors a part was selected from."""
        parts = [p for p in parts if p.batch]
        longest = max(int(p.valid.sum(dim=1).max()) for p in parts)
        target = self.workspace(sum(p.batch for p in parts), longest + room)
        at = 0
        for part in parts:
            target.take(part, at)
            at += part.batch
        return target

    def _push(self, scores: torch.Tensor, rows: Sequence[int], streams: Sequence[Stream],
              gens: Sequence[torch.Generator | None]) -> torch.Tensor:
        """Pick each row's next token and give it to the row's stream (if still running)."""
        tokens = pick(scores, [streams[a].sampling for a in rows], [gens[a] for a in rows])
        for a, token in zip(rows, tokens.tolist(), strict=True):
            if not streams[a].done:
                streams[a].push(token)
        return tokens

    def run(self, state: Prefilled, last: torch.Tensor, streams: Sequence[Stream], *,
            admit: Admit | None = None, capacity: int = 0) -> None:
        """Decode until every stream is finished; ``state`` comes from ``workspace``.

        Given ``admit``, it is asked between steps for rows to join while fewer than
        ``capacity`` rows decode; a row that joins gets its first token at once."""
        device = self.host.device
        streams = list(streams)
        gens = [generator(s.sampling, device) for s in streams]
        active = list(range(len(streams)))
        scores = logits(self.host, last)
        positions = state.next_pos.clone()
        while True:
            tokens = self._push(scores, active, streams, gens)
            alive = [j for j, a in enumerate(active) if not streams[a].done]
            joining = (admit(capacity - len(alive))
                       if admit is not None and len(alive) < capacity else None)
            if joining is not None:
                new = list(range(len(streams), len(streams) + len(joining.streams)))
                streams += joining.streams
                gens += [generator(s.sampling, device) for s in joining.streams]
                first = self._push(logits(self.host, joining.last), new, streams, gens)
                fresh = [j for j, a in enumerate(new) if not streams[a].done]
                keep = torch.tensor(alive, device=device, dtype=torch.long)
                add = torch.tensor(fresh, device=device, dtype=torch.long)
                active = [active[j] for j in alive] + [new[j] for j in fresh]
                if not active:
                    return
                state = self._regroup([state.select(keep), joining.state.select(add)],
                                      max(streams[a].room for a in active))
                tokens = torch.cat([tokens[keep], first[add]])
                positions = torch.cat([positions[keep], joining.state.next_pos[add]])
            elif not alive:
                return
            elif len(alive) <= len(active) // 2:
                keep = torch.tensor(alive, device=device, dtype=torch.long)
                state = self._regroup([state.select(keep)],
                                      max(streams[active[j]].room for j in alive))
                tokens, positions = tokens[keep], positions[keep]
                active = [active[j] for j in alive]
            if state.filled >= state.width:
                for a in active:
                    if not streams[a].done:
                        streams[a]._finish("length")
                return
            cols = torch.tensor([state.filled], device=device)
            (scores,) = self.graphs((state.batch, state.width),
                                    {"tokens": tokens.unsqueeze(1), "cols": cols,
                                     "positions": positions.unsqueeze(1)})
            scores = scores.clone()
            state.filled += 1
            positions = positions + 1
