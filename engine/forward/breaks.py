"""Break points between a model's decoder layers, where the worker answers requests.

Inside ``layer_breaks`` a callback runs before every decoder layer's forward and after every
layer's backward, so a request waits for about one layer of a training step instead of the
whole step. The callback only reads the model (no-grad inference), so the step computes
exactly what it computes without it.

The callback runs only on the thread that entered ``layer_breaks``. Autograd runs a CUDA
backward pass on its own device thread, and serving from there would use the catalogue's
SQLite connection and the worker's state from a second thread; a break reached on another
thread is skipped (a GPU step is short, and its requests are answered after it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's list of decoder layers (the ModuleList as long as its layer count), or None."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    return None


def outside_training() -> ExitStack:
    """No gradients and no autocast, so work done in a break computes as it does elsewhere."""
    stack = ExitStack()
    stack.enter_context(torch.no_grad())
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            stack.enter_context(torch.autocast(device, enabled=False))
    return stack


@contextmanager
def layer_breaks(model: torch.nn.Module,
                 between: Callable[[], None] | None) -> Iterator[None]:
    """Call ``between`` between decoder layers (forward and backward) while inside.

    Calls made while ``between`` itself runs the model, and calls reached on another thread
    (a device's backward thread), are skipped, so the inference it serves is not interrupted
    and serving never leaves the caller's thread; a model without a recognisable layer list
    gets no breaks.
    """
    layers = decoder_layers(model) if between is not None else None
    if layers is None:
        yield
        return
    state = {"open": True, "busy": False}
    owner = threading.get_ident()

    def call(*_: Any) -> None:
        if not state["open"] or state["busy"] or threading.get_ident() != owner:
            return
        state["busy"] = True
        try:
            with outside_training():
                between()
        finally:
            state["busy"] = False

    def before_layer(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        call()
        hidden = args[0] if args else kwargs.get("hidden_states")
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(call)  # runs once the layer's backward has reached its input

    handles = [layer.register_forward_pre_hook(before_layer, with_kwargs=True)
               for layer in layers]
    try:
        yield
    finally:
        state["open"] = False
        for handle in handles:
            handle.remove()
