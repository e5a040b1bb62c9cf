"""The loss and gradients of training rows run after their prompts, one pass per micro-batch.

A pass runs each prompt once (batch of one) together with the head of tokens its task's rows
all start with (``engine.forward.start``), then only the rest of every row, with the loss on
the answer tokens (``engine.forward``). Rows of several prompts may share a pass (joint
training); each token carries its task's weight, so every prompt gets exactly the gradient of
its own task's mean loss.

On a GPU, row widths and target counts are rounded up to a few sizes (``width_bucket``, powers
of two) and each pass shape is captured once as a CUDA graph (forward and backward) and
replayed, so a step costs a few launches instead of thousands; on a CPU nothing is padded and
passes run eagerly.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from engine.errors import PromptbankError
from engine.forward.decoder import causal_mask, checkpoint_layers, checkpointed, run
from engine.forward.graphs import Graphs, Inputs
from engine.forward.past import layout, stack
from engine.forward.rows import Targets, place, power_bucket, targets, width_bucket
from engine.forward.state import token_logprobs
from engine.model import device as models
from engine.model import memory
from engine.model.chat import Row
from engine.training.params import PromptParams

if TYPE_CHECKING:
    from engine.model.host import ModelHost

#: What one more pass costs on a CPU beside its tokens, counted in tokens: the weights are
#: read again for its forward and backward, and its prompts run again.
PASS_COST_TOKENS = 96


@dataclass
class Pass:
    """Rows of one pass: the prompt each starts from, and each row's per-token loss weight."""

    rows: Sequence[Row]
    owners: Sequence[int]
    weights: Sequence[float]


class Passes:
    """Runs training passes for a fixed set of prompts (one per task being trained)."""

    def __init__(self, host: ModelHost, prompts: Sequence[PromptParams],
                 heads: Sequence[Sequence[int]],
                 *, graphs: bool = True) -> None:
        self.host = host
        self.prompts = list(prompts)
        self.heads = [list(h) for h in heads]
        self.head_ids = [torch.tensor(h, dtype=torch.long, device=host.device)
                         for h in self.heads]
        self.lengths = [p.method.length_of(p.value()) for p in self.prompts]
        self.pad = host.chat.pad_id
        self.padded = host.device.type == "cuda"
        # Set when even one row does not fit otherwise (``rows_per_pass``).
        self.checkpointing = False
        self.graphs = Graphs(self._fn_for, host.device, enabled=graphs, warm=1, limit=32)

    def reset(self) -> None:
        """Drop the captured graphs (and the memory they hold)."""
        self.graphs = Graphs(self._fn_for, self.host.device, enabled=self.graphs.enabled,
                             warm=self.graphs.warm, limit=self.graphs.limit)

    def parameters(self, index: int) -> list[torch.nn.Parameter]:
        return self.prompts[index].trainable()

    def _headed(self, owner: int, row: Row) -> bool:
        head = self.heads[owner]
        # The last context token stays in the pass: the first answer token is predicted there.
        return bool(head) and len(row.prompt_ids) > len(head) and \
            row.prompt_ids[:len(head)] == head

    def _cut(self, owner: int, row: Row) -> int:
        """The tokens of ``row`` the pass leaves out: its task's head, run once."""
        return len(self.heads[owner]) if self._headed(owner, row) else 0

    def width(self, owner: int, row: Row) -> int:
        """The tokens ``row`` of prompt ``owner`` takes in a pass."""
        return len(row.ids) - self._cut(owner, row)

    def run(self, part: Pass, scale: float = 1.0) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Each prompt's weighted loss sum (device) and the gradients of every prompt's
        parameters, in ``parameters`` order, prompt after prompt."""
        slots: dict[tuple[int, bool], int] = {}
        row_slot, sequences, starts, row_lengths = [], [], [], []
        for row, owner in zip(part.rows, part.owners, strict=True):
            cut = self._cut(owner, row)
            slot = slots.setdefault((owner, cut > 0), len(slots))
            row_slot.append(slot)
            sequences.append(row.ids[cut:])
            starts.append(len(row.prompt_ids) - cut)
        slot_lengths = [self.lengths[o] + (len(self.heads[o]) if h else 0) for o, h in slots]
        past_valid, row_lengths = layout(slot_lengths, row_slot)
        longest = max(len(s) for s in sequences)
        width = width_bucket(longest) if self.padded else longest
        placed = place(sequences, row_lengths.tolist(), pad_id=self.pad, width=width)
        count = sum(len(s) - max(st, 1) for s, st in zip(sequences, starts, strict=True))
        goal = targets(sequences, starts, width, row_weights=part.weights,
                       row_groups=part.owners,
                       size=power_bucket(count) if self.padded else None)
        key: Hashable = (tuple(slots), len(sequences), width, len(goal))
        inputs = {"ids": placed.ids, "valid": placed.valid, "positions": placed.positions,
                  "past_valid": past_valid, "row_slot": torch.tensor(row_slot),
                  "gather": goal.gather, "tokens": goal.tokens, "weights": goal.weights,
                  "groups": goal.groups, "scale": torch.tensor([scale])}
        with checkpointed(self.host, self.checkpointing):
            sums, *grads = self.graphs(key, inputs, capture=not self.checkpointing)
        return sums, list(grads)

    def _fn_for(self, key: Hashable):
        slots = list(key[0])
        width = max(self.lengths[o] + (len(self.heads[o]) if h else 0) for o, h in slots)
        params = [p for i in range(len(self.prompts)) for p in self.parameters(i)]
        host = self.host

        def fn(x: Inputs) -> tuple[torch.Tensor, ...]:
            packed = [self.prompts[o].method.keys_values(
                host, self.prompts[o].value(), self.head_ids[o] if headed else None)
                for o, headed in slots]
            past = stack(host, packed, x["row_slot"], width)
            mask = causal_mask(x["valid"], x["past_valid"])
            hidden, _ = run(host, past, mask, x["positions"], ids=x["ids"])
            logp = token_logprobs(host, hidden, Targets(x["gather"], x["tokens"], x["weights"],
                                                        x["groups"]))
            weighted = -logp * x["weights"]
            grads = torch.autograd.grad(weighted.sum() * x["scale"][0], params,
                                        allow_unused=True)
            sums = torch.zeros(len(self.prompts), device=logp.device).index_add(
                0, x["groups"], weighted.detach())
            return (sums, *(torch.zeros_like(p) if g is None else g
                            for p, g in zip(params, grads, strict=True)))

        return fn

    def rows_per_pass(self, batch: int, width: int, answers: int) -> int:
        """How many rows of ``width`` tokens (``answers`` of them scored) a pass can hold in
        the device's free memory (``engine.model.memory``); when not even one row fits, the layers
        are checkpointed from then on."""
        host = self.host
        free = models.free_bytes(host.device)
        if host.device.type == "cuda":
            free += torch.cuda.memory_reserved(host.device) - \
                torch.cuda.memory_allocated(host.device)
        budget = free * memory.USABLE
        dtype = str(host.dtype).removeprefix("torch.")
        length = max(self.lengths) + max(map(len, self.heads), default=0)
        method = self.prompts[0].method.name
        rows, self.checkpointing, per_row = memory.rows_that_fit(
            host.shape, dtype, budget, method, length, width, answers, batch,
            checkpointing_possible=bool(checkpoint_layers(host)))
        if per_row > budget:
            raise PromptbankError(
                f"One training row of {width} tokens needs {per_row / memory.GiB:.1f} GB of "
                f"activations{' even checkpointed' if self.checkpointing else ''}, but "
                f"{host.device} has {free / memory.GiB:.1f} GB free, so training stops here.",
                hint=f"Use shorter rows (--max-length {max(8, width // 2)}), free memory or "
                     "use a larger device (`promptbank plan TASK` shows the numbers).")
        return rows


def group_by_width(widths: Sequence[int], pass_cost: int = PASS_COST_TOKENS) -> list[list[int]]:
    """Rows (by index) split into passes of similar width, for a CPU where padding costs as
    much as a real token: the split of the rows sorted by width with the fewest padded tokens
    plus ``pass_cost`` a pass. A round of several tasks' rows mixes short and long texts."""
    order = sorted(range(len(widths)), key=widths.__getitem__)
    best = [0] + [0] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        widest = widths[order[end - 1]]
        best[end], cut[end] = min((best[begin] + (end - begin) * widest + pass_cost, begin)
                                  for begin in range(end))
    groups: list[list[int]] = []
    end = len(order)
    while end:
        groups.insert(0, order[cut[end]:end])
        end = cut[end]
    return groups
