"""CUDA graphs of fixed-shape passes: captured once per shape, then replayed.

A training step or a decoding step of a small model on a GPU is bound by the CPU launching
thousands of kernels; replaying a captured graph launches them all at once. A function is
captured for a shape key after it has been seen ``warm`` times (one-off shapes never pay for
a capture), graphs share one memory pool, and the outputs of a replay are overwritten by the
next one, so callers consume them first. Anything that cannot be captured runs eagerly (and
on a CPU everything does), computing the same thing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

from engine.support.faults import is_out_of_memory

log = logging.getLogger("promptbank.graphs")
Inputs = dict[str, torch.Tensor]
Fn = Callable[[Inputs], tuple[torch.Tensor, ...]]


@dataclass
class _Graph:
    # The function is kept with its graph: tensors it made before the capture (and the graph
    # reads) live as long as it does, so their memory is never handed to anything else.
    fn: Fn
    graph: Any
    inputs: Inputs
    outputs: tuple[torch.Tensor, ...]


class Graphs:
    """Runs ``fn_for(key)`` on inputs of a shape ``key``: eagerly, or replayed from a CUDA
    graph of it."""

    def __init__(self, fn_for: Callable[[Hashable], Fn], device: torch.device, *,
                 enabled: bool = True, warm: int = 1, limit: int = 12) -> None:
        self.fn_for = fn_for
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self.warm = warm
        self.limit = limit
        self.graphs: OrderedDict[Hashable, _Graph] = OrderedDict()
        self.seen: dict[Hashable, int] = {}
        self.failed: set[Hashable] = set()
        self.pool = torch.cuda.graph_pool_handle() if self.enabled else None
        self.captures = 0

    def __call__(self, key: Hashable, inputs: Inputs, *, capture: bool = True
                 ) -> tuple[torch.Tensor, ...]:
        """``fn`` of ``inputs`` (host or device tensors), from the graph of ``key`` if any;
        ``capture`` False runs it eagerly (checkpointed layers run twice, which a graph of
        their first run would not)."""
        entry = self.graphs.get(key) if capture else None
        if entry is None and capture and self._should_capture(key):
            entry = self._capture(key, inputs)
        if entry is None:
            return self.fn_for(key)({k: v.to(self.device, non_blocking=True)
                                     for k, v in inputs.items()})
        self.graphs.move_to_end(key)
        for name, value in inputs.items():
            entry.inputs[name].copy_(value, non_blocking=True)
        entry.graph.replay()
        return entry.outputs

    def _should_capture(self, key: Hashable) -> bool:
        if not self.enabled or key in self.failed:
            return False
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key] > self.warm

    def _capture(self, key: Hashable, inputs: Inputs) -> _Graph | None:
        static = {k: v.to(self.device).clone() for k, v in inputs.items()}
        fn = self.fn_for(key)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up on a side stream, as capture requires
                    fn(static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                outputs = fn(static)
        except Exception as exc:  # an op that cannot be captured: this shape runs eagerly
            torch.cuda.synchronize()
            if is_out_of_memory(exc):
                raise  # the caller sizes its passes down; eager would only fail later
            self.failed.add(key)
            log.warning("CUDA graph capture failed for %s (%s: %s); running eagerly",
                        key, type(exc).__name__, exc)
            return None
        self.captures += 1
        entry = _Graph(fn, graph, static, outputs)
        self.graphs[key] = entry
        while len(self.graphs) > self.limit:
            self.graphs.popitem(last=False)
        return entry

    def forget(self, key: Hashable) -> None:
        """Drop the graph of ``key`` (its buffers are going away)."""
        self.graphs.pop(key, None)
        self.seen.pop(key, None)
