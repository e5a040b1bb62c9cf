"""Model passes after per-layer keys/values: the one place that calls the decoder stack.

Every pass gets an explicit 4-D boolean attention mask and explicit position ids, so the
model's own mask logic (which varies between versions and can synchronise with the host)
never runs, and a pass has the same shapes every time its inputs do (CUDA graphs).

Models with sliding-window layers get each layer type its own mask, cut to the window by the
distance between a query's position and each key's (``engine.model.architecture``), and logits get
the family's head scaling and soft-capping, so every family computes what it computes alone.

Keys/values of a prompt are "packed": one tensor (layers, 2, kv_heads, length, head_dim),
keys at index 0 and values at index 1 of the second dimension.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import Cache

from engine.model.architecture import Architecture

if TYPE_CHECKING:
    from engine.model.host import ModelHost

#: One (keys, values) pair per layer, each (batch, kv_heads, length, head_dim).
Past = list[tuple[torch.Tensor, torch.Tensor]]


class PastCache(Cache):
    """Keys/values the model attends to before its input.

    Without ``write_at`` a pass appends its own keys/values (training, prefill); with it, they
    are written in place at those columns of fixed-size tensors (decoding, scoring), so the
    tensors keep their addresses from one step to the next.
    """

    def __init__(self, past: Past, write_at: torch.Tensor | None = None) -> None:
        super().__init__(layers=[])
        self.given = list(past)
        self.keys = [k for k, _ in past]
        self.values = [v for _, v in past]
        self.write_at = write_at

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        device = key_states.device  # a split model's layers sit on several devices
        if self.write_at is None:
            # From the given past each time: a checkpointed layer runs twice, and its second
            # run must see what the first saw.
            keys, values = self.given[layer_idx]
            self.keys[layer_idx] = torch.cat([keys.to(device), key_states], dim=-2)
            self.values[layer_idx] = torch.cat([values.to(device), value_states], dim=-2)
        else:
            at = self.write_at.to(device)
            self.keys[layer_idx].index_copy_(2, at, key_states)
            self.values[layer_idx].index_copy_(2, at, value_states)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.keys[layer_idx].shape[-2])

    def __len__(self) -> int:
        return len(self.keys)

    def past(self) -> Past:
        """The keys/values per layer after the pass."""
        return list(zip(self.keys, self.values, strict=True))


@cache
def _cache_argument(model_class: type) -> str:
    """The name the model's forward gives its cache argument (renamed in transformers 5)."""
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def decoder(host: ModelHost) -> torch.nn.Module:
    """The model without its output head (hidden states out)."""
    return host.model.base_model


def run(host: ModelHost, past: Past, mask: torch.Tensor, positions: torch.Tensor, *,
        ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
        write_at: torch.Tensor | None = None) -> tuple[torch.Tensor, PastCache]:
    """Run tokens (ids or embeddings) after ``past``; return the last hidden states and the cache.

    ``mask`` is (batch, 1, tokens, past + tokens) or, with ``write_at``, (batch, 1, tokens,
    width of the fixed tensors); True where a query may attend to a key.
    """
    model = decoder(host)
    cache_ = PastCache(past, write_at)
    out = model(input_ids=ids, inputs_embeds=embeds,
                attention_mask=layer_masks(host, mask, positions),
                position_ids=positions, use_cache=True,
                **{_cache_argument(type(model)): cache_})
    return out.last_hidden_state, cache_


def layer_masks(host: ModelHost, mask: torch.Tensor, positions: torch.Tensor
                ) -> torch.Tensor | dict[str, torch.Tensor]:
    """The mask each layer gets: ``mask`` cut to the layers' sliding windows, one per layer
    type where the types differ, as booleans or as scores to add (eager attention).

    Every mask the engine builds lets a row's last query see all of its row's real keys up
    to itself, and a row's real keys are its tokens in order, so a key's position is the
    number of keys any query sees before it.
    """
    arch: Architecture = host.architecture
    if arch.windowed:
        key_pos = mask.any(dim=2, keepdim=True).cumsum(dim=-1) - 1
        distance = positions[:, None, :, None] - key_pos

    def cut(window: int | None) -> torch.Tensor:
        kept = mask if window is None else mask & (distance < window)
        if not arch.additive_mask:
            return kept
        return torch.zeros(kept.shape, dtype=host.dtype, device=kept.device).masked_fill(
            ~kept, torch.finfo(host.dtype).min)

    if arch.by_type is None:
        return cut(arch.windows[0] if arch.windowed else None)
    return {kind: cut(window) for kind, window in arch.by_type.items()}


def checkpoint_layers(host: ModelHost) -> list[torch.nn.Module]:
    """The decoder layers activation checkpointing can wrap (empty if the family has none)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in decoder(host).modules() if isinstance(m, GradientCheckpointingLayer)]


@contextmanager
def checkpointed(host: ModelHost, enabled: bool = True) -> Iterator[None]:
    """Run the decoder layers under activation checkpointing: each keeps only its input for
    the backward pass and runs again there. transformers' own checkpointing drops the cache
    (so PEFT refuses prefix tuning with it); the engine's cache gives a layer's second run
    the same past, so both methods can use it."""
    layers = checkpoint_layers(host) if enabled else []
    for layer in layers:
        layer.forward = partial(checkpoint, type(layer).forward.__get__(layer),
                                use_reentrant=False)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def logits(host: ModelHost, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits (float32, on the host's device) of hidden states, as the model's own
    head gives them."""
    out = host.model.get_output_embeddings()(hidden).float().to(host.device)
    arch = host.architecture
    if arch.logit_scale != 1.0:
        out = out * arch.logit_scale
    if arch.logit_softcap is not None:
        out = torch.tanh(out / arch.logit_softcap) * arch.logit_softcap
    return out


def empty_past(host: ModelHost, batch: int) -> Past:
    """A past of no tokens, for rows that start from nothing."""
    shape = (batch, host.num_kv_heads, 0, host.head_dim)
    return [(torch.empty(shape, device=device, dtype=host.dtype),) * 2
            for device in host.layer_devices]


def unpack(packed: torch.Tensor) -> Past:
    """Per-layer (keys, values) of one packed prompt, as a batch of one."""
    return [(layer[0].unsqueeze(0), layer[1].unsqueeze(0)) for layer in packed]


def pack(past: Past) -> torch.Tensor:
    """The packed form of a batch-of-one past."""
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in past])


def causal_mask(valid: torch.Tensor, past_valid: torch.Tensor) -> torch.Tensor:
    """(batch, 1, T, P + T) mask: each query sees the valid past slots and the valid tokens
    up to itself. A padding query always sees at least its row's first token, so no row of
    the softmax is empty."""
    width = valid.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=valid.device).tril()
    data = causal.unsqueeze(0) & valid.unsqueeze(1)
    past = past_valid.unsqueeze(1).expand(-1, width, -1)
    return torch.cat([past, data], dim=2).unsqueeze(1)


def _single_row(host: ModelHost, past: Past, length: int, *, ids: torch.Tensor | None = None,
                embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Packed keys/values of ``past`` followed by one row of ``length`` tokens."""
    offset = past[0][0].shape[2]
    device = host.device
    valid = torch.ones(1, length, dtype=torch.bool, device=device)
    mask = causal_mask(valid, torch.ones(1, offset, dtype=torch.bool, device=device))
    positions = torch.arange(offset, offset + length, device=device).unsqueeze(0)
    _, grown = run(host, past, mask, positions, ids=ids, embeds=embeds)
    return pack(grown.past())


def embeddings_past(host: ModelHost, embeds: torch.Tensor) -> torch.Tensor:
    """Packed keys/values of input embeddings (length, hidden) run as one row from position 0."""
    return _single_row(host, empty_past(host, 1), embeds.shape[0], embeds=embeds.unsqueeze(0))


def extend_past(host: ModelHost, packed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Packed keys/values of a prompt followed by those of the token ids run after it."""
    return _single_row(host, unpack(packed), int(ids.shape[0]), ids=ids.unsqueeze(0))

