"""The protocol every prompt method implements; nothing outside ``engine/methods`` branches on
a method's name.

A method owns its tensor layout, how the tensor becomes per-layer keys/values, how it starts
from token embeddings, and how it maps to PEFT's adapter format. Every method can also give
its tensor as one vector per virtual token (``token_rows``), which is what length changes,
transfer, similarity and the MLP reparameterisation work on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from engine.api.session import MethodInfo

if TYPE_CHECKING:
    from engine.model.host import ModelHost


def fit_length(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Repeat or cut a sequence (first dimension) to exactly ``length`` items."""
    reps = -(-length // tokens.shape[0])
    return tokens.repeat(reps, *([1] * (tokens.dim() - 1)))[:length]


class PromptMethod(ABC):
    """One way of turning a trained tensor into keys/values a frozen model attends to."""

    #: Name stored in prompt files and the catalogue, and the file's tensor key.
    name: str = ""
    #: What the desktop says about the method, in a few words.
    summary: str = ""
    #: The tensor axis that counts virtual tokens.
    token_axis: int = 0
    #: Learning rate measured on the embedded model (see the README).
    default_lr: float = 0.1
    #: PEFT's ``peft_type`` for this method.
    peft_type: str = ""
    #: Whether the tensor lives in the input embedding space (nearest tokens, KoboldAI).
    input_embeddings: bool = False

    def info(self) -> MethodInfo:
        """The method as the desktop and the protocol see it (no torch needed to read it)."""
        return MethodInfo(name=self.name, summary=self.summary, tensor_key=self.name,
                          token_axis=self.token_axis, input_embeddings=self.input_embeddings,
                          default_lr=self.default_lr)

    @abstractmethod
    def shape(self, length: int, geometry: Any) -> tuple[int, ...]:
        """The tensor shape of a ``length``-token prompt on a model of ``geometry``."""

    @abstractmethod
    def length_of(self, tensor: torch.Tensor) -> int:
        """The number of virtual tokens in ``tensor``."""

    @abstractmethod
    def token_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor as one vector per virtual token: (length, features)."""

    @abstractmethod
    def from_token_rows(self, rows: torch.Tensor, geometry: Any) -> torch.Tensor:
        """The inverse of ``token_rows``."""

    @abstractmethod
    def keys_values(self, host: ModelHost, tensor: torch.Tensor,
                    head: torch.Tensor | None = None) -> torch.Tensor:
        """Per-layer keys/values (layers, 2, kv_heads, length [+ head], head_dim) of the
        prompt, followed by those of the ``head`` token ids run after it (differentiable)."""

    @abstractmethod
    def from_embeddings(self, host: ModelHost, embeds: torch.Tensor) -> torch.Tensor:
        """A starting tensor that acts like the token embeddings ``embeds`` (length, hidden)."""

    def peft_config(self, geometry: Any, heads: int) -> dict[str, Any]:
        """The method-specific fields of PEFT's ``adapter_config.json``."""
        return {}

    def check_peft_rows(self, rows: torch.Tensor, geometry: Any, source: str) -> None:
        """Refuse PEFT ``prompt_embeddings`` that do not fit the model (PromptbankError)."""
        from engine.errors import PromptbankError

        width = self.token_rows(torch.zeros(self.shape(1, geometry))).shape[1]
        if rows.ndim != 2 or rows.shape[1] != width:
            raise PromptbankError(
                f"{source} holds a {self.name} of shape {tuple(rows.shape)}, but the loaded "
                f"model (hidden size {geometry.hidden_size}, {geometry.layers} layers) needs "
                f"rows of {width} values, so it cannot be used.",
                hint="Load the model the prompt was trained for.")

    def fit_length(self, tensor: torch.Tensor, length: int, geometry: Any) -> torch.Tensor:
        """The prompt repeated or cut to exactly ``length`` virtual tokens."""
        return self.from_token_rows(fit_length(self.token_rows(tensor), length), geometry)
