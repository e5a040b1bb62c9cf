"""Reading a safetensors header without torch (the catalogue and desktop use this).

Import, the catalogue, ``library rebuild`` and ``SoftPrompt`` all read prompt headers here, so
a damaged header gets the same one-line error wherever it is met.
"""

from __future__ import annotations

import re
import struct

from engine.errors import PromptbankError
from engine.support import safe_json

MAX_HEADER = 1 << 20
#: A header nests three levels (tensors, their fields, a shape); deeper is damage or malice.
MAX_HEADER_DEPTH = 8
_WHOLE = re.compile(r"\d{1,9}")
_DAMAGED_HINT = "Restore the file from a backup or export it again."


def read_header_metadata(data: bytes, *, source: str = "file") -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob, validated without trusting its sizes."""
    if len(data) < 8:
        raise PromptbankError(f"{source} is empty or truncated.")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER or 8 + size > len(data):
        raise PromptbankError(f"{source} has a damaged header (truncated or not safetensors).")
    try:
        header = safe_json.loads(data[8 : 8 + size], max_depth=MAX_HEADER_DEPTH)
    except safe_json.JsonRefused as exc:
        raise PromptbankError(f"{source} has a damaged header ({exc}).",
                              hint=_DAMAGED_HINT) from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise PromptbankError(f"{source} has no Promptbank metadata.")
    return {str(k): str(v) for k, v in meta.items()}


def is_prompt_file(data: bytes, meta: dict[str, str]) -> bool:
    """Whether a safetensors blob with metadata ``meta`` is a Promptbank prompt file: its
    format says so and it holds the tensor its ``method`` names (methods name their keys)."""
    if meta.get("format") != "promptbank" or not meta.get("method"):
        return False
    (size,) = struct.unpack("<Q", data[:8])
    header = safe_json.loads(data[8 : 8 + size], max_depth=MAX_HEADER_DEPTH)
    return isinstance(header.get(meta["method"]), dict)


def header_int(meta: dict[str, str], key: str, *, source: str,
               default: int | None = None) -> int:
    """A whole-number field of a header's metadata (``default`` when absent, if given); a
    missing or malformed one is a one-line error naming the field and its value."""
    value = meta.get(key)
    if value is None and default is not None:
        return default
    if value is None:
        raise PromptbankError(f"{source} has a damaged header: it lacks '{key}'.",
                              hint=_DAMAGED_HINT)
    if not _WHOLE.fullmatch(value):
        shown = value if len(value) <= 24 else value[:24] + "…"
        raise PromptbankError(f"{source} has a damaged header: '{key}' is {shown!r}, not a "
                              "whole number.", hint=_DAMAGED_HINT)
    return int(value)
