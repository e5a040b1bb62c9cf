"""Soft prompts as per-layer past keys/values: the exact shared-prefix computation.

With causal attention the virtual tokens never see the data tokens after them, so their
per-layer keys/values are the same for every row. They are computed once (batch of one),
broadcast to the batch as the cache, and only the data tokens are run. Gradients flow back
through the broadcast into the prompt, so training on this path is exact.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from engine.prompts import SoftPrompt

#: One (keys, values) pair per layer, each (batch, kv_heads, length, head_dim).
Past = list[tuple[torch.Tensor, torch.Tensor]]


def prompt_past(host, method: str, tensor: torch.Tensor) -> Past:
    """Per-layer keys/values of a prompt (batch of one), on the host's device and dtype.

    ``prompt``: the virtual-token embeddings run through the model once (differentiable).
    ``prefix``: the tensor (layers, 2, kv_heads, n, head_dim) already is the keys/values.
    """
    tensor = tensor.to(host.device, host.dtype)
    if method == "prefix":
        return [(layer[0].unsqueeze(0), layer[1].unsqueeze(0)) for layer in tensor]
    n = tensor.shape[0]
    positions = torch.arange(n, device=host.device).unsqueeze(0)
    out = host.model.base_model(
        inputs_embeds=tensor.unsqueeze(0), position_ids=positions, use_cache=True
    )
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers]


def soft_prompt_past(host, prompt: SoftPrompt) -> Past:
    """``prompt_past`` of a saved SoftPrompt (no gradients: it is for serving)."""
    with torch.no_grad():
        return prompt_past(host, prompt.method, prompt.tensor)


def make_cache(past: Past, batch_size: int) -> DynamicCache:
    """A fresh cache holding ``past`` broadcast to ``batch_size`` rows (views, no copies)."""
    return DynamicCache(
        ddp_cache_data=[
            (k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in past
        ]
    )


def data_positions(attention_mask: torch.Tensor, offset: int | torch.Tensor) -> torch.Tensor:
    """Position ids of data tokens that follow ``offset`` prompt tokens, skipping padding.

    Counting only real tokens makes a left- or right-padded row get the positions it has alone.
    """
    offset = torch.as_tensor(offset, device=attention_mask.device).reshape(-1, 1)
    return offset + (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def data_forward(
    host,
    past: Past,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    past_mask: torch.Tensor | None = None,
    prompt_lengths: torch.Tensor | None = None,
    logits_to_keep: int | torch.Tensor = 0,
) -> torch.Tensor:
    """Logits of the data tokens run after the prompt's keys/values.

    ``past`` may hold one row (broadcast to the batch) or one row per batch row. For rows
    with prompts of different lengths, ``past_mask`` (batch, past_len) marks the real prompt
    slots and ``prompt_lengths`` gives each row's prompt length (its first data position).
    ``logits_to_keep`` is passed to the model (a boolean (batch, length) mask returns only
    those positions' logits, flattened: training needs only the target positions).
    """
    batch = input_ids.shape[0]
    past_len = past[0][0].shape[2] if past else 0
    cache = make_cache(past, batch) if past else None
    if past_mask is None:
        past_mask = torch.ones(batch, past_len, dtype=attention_mask.dtype, device=input_ids.device)
    if prompt_lengths is None:
        prompt_lengths = torch.full((batch,), past_len, device=input_ids.device)
    mask = torch.cat([past_mask.to(attention_mask.dtype), attention_mask], dim=1)
    out = host.model(
        input_ids=input_ids,
        attention_mask=mask,
        past_key_values=cache,
        position_ids=data_positions(attention_mask, prompt_lengths),
        use_cache=cache is not None,
        logits_to_keep=logits_to_keep,
    )
    return out.logits
