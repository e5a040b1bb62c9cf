"""The engine process's wire format: one JSON object per line, both ways. Torch-free.

A request is ``{"id": str, "op": str, "args": {...}}``; an event is
``{"id": str, "type": str, ...fields}``. Events of one request share its id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
EVENT_TYPES = ("hello", "progress", "token", "result", "error", "log")
OPS = (
    "hello", "ping", "load_model", "model_info", "generate", "score", "train", "continue",
    "cancel", "jobs", "eval", "apply", "nearest_tokens", "similarity", "shutdown",
)
MAX_LINE = 16 << 20


class ProtocolError(ValueError):
    """A line that is not a valid request or event."""


@dataclass
class Request:
    """One request to the engine process."""

    id: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({"id": self.id, "op": self.op, "args": self.args}) + "\n"


@dataclass
class Event:
    """One event from the engine process about request ``id``."""

    id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({**self.data, "id": self.id, "type": self.type}, default=str) + "\n"

    @property
    def final(self) -> bool:
        """True for the event that ends a request (its result or its error)."""
        return self.type in ("result", "error")


def _parse_object(line: str | bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a line must be one JSON object")
    return obj


def decode_request(line: str | bytes) -> Request:
    """Parse a request line; ProtocolError says what is wrong with it."""
    obj = _parse_object(line)
    rid, op, args = obj.get("id"), obj.get("op"), obj.get("args", {})
    if not isinstance(rid, str) or not rid:
        raise ProtocolError("a request needs a non-empty string 'id'")
    if not isinstance(op, str) or not op:
        raise ProtocolError("a request needs a string 'op'")
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be an object")
    return Request(rid, op, args)


def decode_event(line: str | bytes) -> Event:
    """Parse an event line; ProtocolError says what is wrong with it."""
    obj = _parse_object(line)
    rid, kind = obj.pop("id", None), obj.pop("type", None)
    if not isinstance(rid, str) or kind not in EVENT_TYPES:
        raise ProtocolError("an event needs a string 'id' and a known 'type'")
    return Event(rid, kind, obj)
