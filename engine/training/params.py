"""The trainable prompt: a plain tensor, or an MLP reparameterisation folded in at save time."""

from __future__ import annotations

import torch

from engine.methods.base import PromptMethod


class PromptParams(torch.nn.Module):
    """A prompt being trained; ``value()`` is the plain tensor that is used and saved.

    With ``reparam`` an MLP maps one seed vector per virtual token to a change of that token's
    row (``PromptMethod.token_rows``); its last layer starts at zero, so step 0 is exactly
    the initial tensor.
    """

    def __init__(self, method: PromptMethod, init: torch.Tensor, geometry, reparam: int = 0,
                 seed: int = 0) -> None:
        super().__init__()
        self.method = method
        self.geometry = geometry
        if reparam:
            rows = method.token_rows(init)
            self.register_buffer("base", init.clone())
            with torch.random.fork_rng(devices=[]):  # seeded, without touching the global RNG
                torch.manual_seed(seed)
                self.seed_tokens = torch.nn.Parameter(torch.randn(rows.shape[0], reparam) * 0.1)
                self.mlp = torch.nn.Sequential(
                    torch.nn.Linear(reparam, reparam), torch.nn.Tanh(),
                    torch.nn.Linear(reparam, rows.shape[1]))
            torch.nn.init.zeros_(self.mlp[2].weight)
            torch.nn.init.zeros_(self.mlp[2].bias)
        else:
            self.tensor = torch.nn.Parameter(init.clone())

    @property
    def reparameterised(self) -> bool:
        return hasattr(self, "mlp")

    def trainable(self) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates, in a fixed order (gradients come in it)."""
        return [p for p in self.parameters() if p.requires_grad]

    def initial(self) -> torch.Tensor:
        """The tensor the run started from (kept in checkpoints)."""
        return self.base if self.reparameterised else self.tensor

    def value(self) -> torch.Tensor:
        if not self.reparameterised:
            return self.tensor
        delta = self.method.from_token_rows(self.mlp(self.seed_tokens), self.geometry)
        return self.base + delta
