"""The check every loaded model passes before it serves: the engine's forward path gives the
model's own logits.

The engine runs the decoder with its own masks, positions, cache and logit head, so a family
that does something else in those places (ALiBi biases built from a 2-D mask, a cache of
another layout, a head transform nobody told us of) would give wrong numbers silently. A
fixed text is run through the model's own forward and through the engine's path, split
after a few tokens as a prompt's keys/values would be, in a batch beside a shorter row; a
model whose logits differ is refused with the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from engine.errors import PromptbankError
from engine.forward.decoder import embeddings_past, logits
from engine.forward.past import gather
from engine.forward.rows import place
from engine.forward.state import data_hidden

if TYPE_CHECKING:
    from engine.model.host import ModelHost

#: A fixed English text; its first tokens act as the prompt, the rest as the input.
PROBE_TEXT = ("The quick brown fox jumps over the lazy dog, and then the dog sleeps under "
              "the old oak tree until the evening comes.")
PROMPT_TOKENS = 5
#: Largest difference allowed, relative to the largest reference logit: float32 paths differ
#: by reordered sums (1e-6 here); 16-bit ones and quantised bases by rounding at other places
#: (a few 1e-3). A model the engine gets wrong differs by tens of percent.
TOLERANCE = {torch.float32: 1e-4}
TOLERANCE_16BIT = 0.05


@dataclass(frozen=True)
class Fidelity:
    """The check's result: the largest logit difference relative to the largest logit."""

    relative_error: float
    tolerance: float
    tokens: int


def _probe_ids(host: ModelHost) -> list[int]:
    ids = host.tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    ids = [i for i in ids if 0 <= i < int(host.config.vocab_size)]
    while len(ids) < 2 * PROMPT_TOKENS + 8:
        ids = ids + ids if ids else list(range(2 * PROMPT_TOKENS + 8))
    return ids[:min(len(ids), 32)]


@torch.no_grad()
def _reference(host: ModelHost, ids: list[int]) -> torch.Tensor:
    """The model's own logits of ``ids``, or a PromptbankError when it cannot run at all."""
    try:
        return host.model(input_ids=torch.tensor([ids], device=host.device)).logits[0].float()
    except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise PromptbankError(
            f"The model cannot run a short text by itself ({type(exc).__name__}: {exc}); its "
            "config.json and weights may not belong together.",
            hint="Check the model folder, or load it in transformers to see the fault.") from exc


@torch.no_grad()
def _errors(host: ModelHost, ids: list[int], reference: torch.Tensor) -> float:
    device = host.device
    whole = torch.tensor([ids], device=device)
    packed = embeddings_past(host, host.embeddings()(whole[0, :PROMPT_TOKENS]))
    rest = ids[PROMPT_TOKENS:]
    # The row of interest sits beside a shorter one with no prompt: padding, right-aligned
    # pasts and per-row positions are all exercised.
    past, valid, lengths = gather(host, [packed, None], [0, 1])
    short = PROMPT_TOKENS - 1
    placed = place([rest, ids[:short]], lengths.tolist(), pad_id=host.chat.pad_id)
    ours = logits(host, data_hidden(host, past, valid, placed.to(device)))
    split = (ours[0, :len(rest)] - reference[PROMPT_TOKENS:]).abs().max()
    alone = (ours[1, :short] - reference[:short]).abs().max()
    return float(max(split, alone) / reference.abs().max().clamp_min(1e-6))


def check_fidelity(host: ModelHost) -> Fidelity:
    """Compare the engine's logits with the model's own and record the result on the host
    (``exactness``); raise a PromptbankError (the model is refused) when they differ or the
    engine's path cannot run on it."""
    ids = _probe_ids(host)
    family = host.architecture.model_type
    # A quantised base rounds activations too (8-bit quantises each row of its inputs).
    tolerance = TOLERANCE_16BIT if getattr(host, "quantization", "") \
        else TOLERANCE.get(host.dtype, TOLERANCE_16BIT)
    reference = _reference(host, ids)
    try:
        error = _errors(host, ids, reference)
    except (RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise PromptbankError(
            f"Promptbank cannot run this {family} model exactly: its layers do not take the "
            f"keys/values and masks a prompt needs ({type(exc).__name__}: {exc}).",
            hint="Use a model of a tested family (README, Models).") from exc
    if not error <= tolerance:
        raise PromptbankError(
            f"Promptbank cannot run this {family} model exactly: with a prompt its logits "
            f"differ from the model's own by {error:.1%} (allowed {tolerance:.2%}), so every "
            "number it gave would be wrong.",
            hint="Use a model of a tested family (README, Models).")
    host.exactness = error
    return Fidelity(error, tolerance, len(ids))
