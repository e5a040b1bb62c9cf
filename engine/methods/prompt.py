"""``prompt``: input-level virtual tokens (Lester et al.), a (length, hidden_size) tensor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from engine.forward.decoder import embeddings_past
from engine.methods.base import PromptMethod

if TYPE_CHECKING:
    from engine.model.host import ModelHost


class PromptTuning(PromptMethod):
    """Virtual-token embeddings placed before the input; the model computes their keys/values."""

    name = "prompt"
    summary = "virtual input tokens only (smallest files, nearest words visible)"
    default_lr = 0.3
    peft_type = "PROMPT_TUNING"
    input_embeddings = True

    def shape(self, length: int, geometry: Any) -> tuple[int, ...]:
        return (length, geometry.hidden_size)

    def length_of(self, tensor: torch.Tensor) -> int:
        return int(tensor.shape[0])

    def token_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def from_token_rows(self, rows: torch.Tensor, geometry: Any) -> torch.Tensor:
        return rows

    def keys_values(self, host: ModelHost, tensor: torch.Tensor,
                    head: torch.Tensor | None = None) -> torch.Tensor:
        embeds = tensor.to(host.device, host.dtype)
        if head is not None and head.numel():
            embeds = torch.cat([embeds, host.embeddings()(head.to(host.device))], dim=0)
        return embeddings_past(host, embeds)

    def from_embeddings(self, host: ModelHost, embeds: torch.Tensor) -> torch.Tensor:
        return embeds.float().cpu()

    def peft_config(self, geometry: Any, heads: int) -> dict[str, Any]:
        return {"token_dim": geometry.hidden_size, "num_attention_heads": heads,
                "prompt_tuning_init": "RANDOM", "prompt_tuning_init_text": None,
                "tokenizer_name_or_path": None, "tokenizer_kwargs": None}
