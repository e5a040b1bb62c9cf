"""An instruction proposed from a new task's labels or examples, for the user to edit."""

from __future__ import annotations

from engine.library.readers import Example

#: Example outputs quoted in a generate task's proposal (each cut to QUOTE characters).
QUOTED = 2
QUOTE = 60


def propose_instruction(kind: str, labels: list[str], examples: list[Example]) -> str:
    """A first instruction: the label words for classify, a couple of outputs for generate
    ("" when there is nothing to write it from)."""
    if kind == "classify" and labels:
        return f"Classify the input as one of: {', '.join(labels)}."
    outputs = [e.output.strip() for e in examples if e.output.strip()][:QUOTED]
    if not outputs:
        return ""
    quoted = " / ".join(f"“{_cut(o)}”" for o in outputs)
    return f"Write the output for the input, in the style of these examples: {quoted}."


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTE else flat[: QUOTE - 1].rstrip() + "…"
