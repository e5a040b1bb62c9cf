"""What a model family does differently from Llama where the engine's forward path must follow
it: how far back each layer attends (sliding windows), and what the output head does after
its projection (scaling, soft-capping). Read from the model's config, once per load.

The engine gives the decoder explicit masks and computes logits itself, so both the model's
own mask logic and its own logit code are bypassed; these facts put back what they would do.
A family whose layers this does not describe is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import PromptbankError

FULL = "full_attention"
SLIDING = "sliding_attention"


@dataclass(frozen=True)
class Architecture:
    """The per-family facts of one loaded model."""

    model_type: str
    #: Per layer: how many positions back a query sees (itself included); None: all.
    windows: tuple[int | None, ...]
    #: Layer type → window, when layers differ and the model takes one mask per type.
    by_type: dict[str, int | None] | None
    #: Logits are the head's output times ``logit_scale``, then soft-capped when set.
    logit_scale: float = 1.0
    logit_softcap: float | None = None
    #: Whether masks are added to the attention scores (eager attention) rather than given
    #: as booleans (SDPA).
    additive_mask: bool = False

    @property
    def windowed(self) -> bool:
        """Whether some layer attends to a sliding window only."""
        return any(w is not None for w in self.windows)

    @classmethod
    def of(cls, config: Any) -> Architecture:
        """The facts of a transformers config, or a PromptbankError naming what the engine
        cannot reproduce."""
        model_type = str(getattr(config, "model_type", "") or "unknown")
        layers = int(config.num_hidden_layers)
        window = getattr(config, "sliding_window", None)
        types = getattr(config, "layer_types", None)
        if types:
            unknown = sorted(set(types) - {FULL, SLIDING})
            if unknown:
                raise PromptbankError(
                    f"This {model_type} model has {', '.join(unknown)} layers; Promptbank "
                    "computes prompts exactly only for full and sliding-window attention.",
                    hint="Use a model of another family (Llama, Qwen, Gemma, Mistral, Phi...).")
            per_type = {t: None if t == FULL else _window(window, model_type) for t in types}
            windows = tuple(per_type[t] for t in types)
            by_type = per_type if len(set(types)) > 1 else None
        else:
            windows = (None if window is None else _window(window, model_type),) * layers
            by_type = None
        scale = 1.0
        if getattr(config, "logits_scaling", None):
            scale /= float(config.logits_scaling)
        if getattr(config, "logit_scale", None):
            scale *= float(config.logit_scale)
        cap = getattr(config, "final_logit_softcapping", None)
        return cls(model_type, windows, by_type, scale, float(cap) if cap else None,
                   _additive(config, model_type))


def _additive(config: Any, model_type: str) -> bool:
    """Eager attention adds the mask to its scores; SDPA takes it as booleans. Other kernels
    (flash, flex) read masks in forms the engine does not build."""
    kind = getattr(config, "_attn_implementation", None) or "sdpa"
    if kind not in ("sdpa", "eager"):
        raise PromptbankError(
            f"This {model_type} model is set to the '{kind}' attention kernel; Promptbank's "
            "masks need 'sdpa' or 'eager'.",
            hint="Remove attn_implementation from the model's config.json.")
    return kind == "eager"


def _window(window: Any, model_type: str) -> int:
    if not isinstance(window, int) or window < 1:
        raise PromptbankError(
            f"This {model_type} model has sliding-window layers but no usable window size "
            f"({window!r}) in its config.json.",
            hint="Set sliding_window in the model's config.json to the model's window.")
    return window
