"""``prefix``: per-layer key/value prefixes (P-tuning v2), a
(layers, 2, kv_heads, length, head_dim) tensor of keys (0) and values (1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from engine.forward.decoder import embeddings_past, extend_past
from engine.methods.base import PromptMethod

if TYPE_CHECKING:
    from engine.model.host import ModelHost


class PrefixTuning(PromptMethod):
    """Keys and values trained directly at every layer; no model pass is needed to use them."""

    name = "prefix"
    summary = "per-layer keys/values (P-tuning v2), strong on small models"
    token_axis = 3
    default_lr = 2e-2
    peft_type = "PREFIX_TUNING"

    def shape(self, length: int, geometry: Any) -> tuple[int, ...]:
        return (geometry.layers, 2, geometry.kv_heads, length, geometry.head_dim)

    def length_of(self, tensor: torch.Tensor) -> int:
        return int(tensor.shape[3])

    def token_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        # (layers, 2, kv, n, hd) → (n, layers·2·kv·hd): PEFT's row layout for prefixes.
        return tensor.permute(3, 0, 1, 2, 4).reshape(tensor.shape[3], -1)

    def from_token_rows(self, rows: torch.Tensor, geometry: Any) -> torch.Tensor:
        shaped = rows.reshape(rows.shape[0], geometry.layers, 2, geometry.kv_heads,
                              geometry.head_dim)
        return shaped.permute(1, 2, 3, 0, 4).contiguous()

    def keys_values(self, host: ModelHost, tensor: torch.Tensor,
                    head: torch.Tensor | None = None) -> torch.Tensor:
        packed = tensor.to(host.device, host.dtype)
        if head is None or not head.numel():
            return packed
        return extend_past(host, packed, head.to(host.device))

    def from_embeddings(self, host: ModelHost, embeds: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return embeddings_past(host, embeds.to(host.device, host.dtype)).float().cpu()

    def peft_config(self, geometry: Any, heads: int) -> dict[str, Any]:
        token_dim = geometry.kv_heads * geometry.head_dim
        return {"token_dim": token_dim, "num_attention_heads": geometry.kv_heads,
                "encoder_hidden_size": token_dim, "prefix_projection": False,
                "init_weights": None}
