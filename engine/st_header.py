"""Reading a safetensors header without torch (the catalogue and desktop use this)."""

from __future__ import annotations

import json
import struct

from engine.errors import PromptbankError

MAX_HEADER = 1 << 20


def read_header_metadata(data: bytes, *, source: str = "file") -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob, validated without trusting its sizes."""
    if len(data) < 8:
        raise PromptbankError(f"{source} is empty or truncated.")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER or 8 + size > len(data):
        raise PromptbankError(f"{source} has a damaged header (truncated or not safetensors).")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptbankError(f"{source} has a damaged header (not valid JSON).") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise PromptbankError(f"{source} has no Promptbank metadata.")
    return {str(k): str(v) for k, v in meta.items()}
