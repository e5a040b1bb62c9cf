"""The trainable prompt: a plain tensor, or an MLP reparameterisation, optionally mixed with
frozen library prompts; all folded into one plain tensor at save time."""

from __future__ import annotations

import math

import torch

from engine.methods.base import PromptMethod


class PromptParams(torch.nn.Module):
    """A prompt being trained; ``value()`` is the plain tensor that is used and saved.

    With ``reparam`` an MLP maps one seed vector per virtual token to a change of that token's
    row (``PromptMethod.token_rows``); its last layer starts at zero, so step 0 is exactly
    the initial tensor.

    With ``sources`` (other tasks' prompts stacked, frozen) the prompt is a mixture, as in
    ATTEMPT without its input dependence: trained weights (a softmax) over the sources and the
    new part, which starts with half the weight.
    """

    def __init__(self, method: PromptMethod, init: torch.Tensor, geometry, reparam: int = 0,
                 seed: int = 0, sources: torch.Tensor | None = None) -> None:
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
        if sources is not None and len(sources):
            self.register_buffer("sources", sources.to(init.dtype).clone())
            logits = torch.zeros(len(sources) + 1)
            logits[-1] = math.log(len(sources))
            self.mix_logits = torch.nn.Parameter(logits)

    @property
    def reparameterised(self) -> bool:
        return hasattr(self, "mlp")

    def trainable(self) -> list[torch.nn.Parameter]:
        """The parameters the optimiser updates, in a fixed order (gradients come in it)."""
        return [p for p in self.parameters() if p.requires_grad]

    def initial(self) -> torch.Tensor:
        """The tensor the run started from (kept in checkpoints)."""
        return self.base if self.reparameterised else self.tensor

    @property
    def mixed(self) -> bool:
        return hasattr(self, "mix_logits")

    def mix_weights(self) -> list[float]:
        """The mixture's weights, the sources' then the new part's (empty when unmixed)."""
        return torch.softmax(self.mix_logits.detach(), 0).tolist() if self.mixed else []

    def _own(self) -> torch.Tensor:
        if not self.reparameterised:
            return self.tensor
        delta = self.method.from_token_rows(self.mlp(self.seed_tokens), self.geometry)
        return self.base + delta

    def value(self) -> torch.Tensor:
        own = self._own()
        if not self.mixed:
            return own
        weights = torch.softmax(self.mix_logits, 0).to(own.dtype)
        return weights[-1] * own + torch.tensordot(weights[:-1], self.sources, dims=1)
