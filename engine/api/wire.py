"""The engine process's wire format: one JSON object per line, both ways. Torch-free.

A request is ``{"id": str, "op": str, "args": {...}}``; an event is
``{"id": str, "type": str, ...fields}``. Events of one request share its id and the last one
is ``result`` or ``error`` (with ``message``). On start-up the worker sends a ``hello`` event
with id ``""``. Every op and its payloads are in the group modules beside this one
(``engine.api.registry`` lists them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from engine.support import safe_json

PROTOCOL_VERSION = 1
EVENT_TYPES = ("hello", "progress", "token", "row_done", "result", "error", "log")
MAX_LINE = 16 << 20


class ProtocolError(ValueError):
    """A line that is not a valid request or event, or a request with bad arguments."""


@dataclass
class Request:
    """One request to the engine process."""

    id: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The request as one JSON line."""
        return json.dumps({"id": self.id, "op": self.op, "args": self.args}) + "\n"


@dataclass
class Event:
    """One event from the engine process about request ``id``."""

    id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The event as one JSON line (``id`` and ``type`` win over same-named fields)."""
        return json.dumps({**self.data, "id": self.id, "type": self.type}, default=str) + "\n"

    @property
    def final(self) -> bool:
        """True for the event that ends a request (its result or its error)."""
        return self.type in ("result", "error")

    @property
    def message(self) -> str:
        """The error message of an ``error`` event (empty otherwise)."""
        return str(self.data.get("message", ""))


def error(rid: str, message: str, **fields: Any) -> Event:
    """The final event of a request that failed: one readable sentence in ``message``.

    Every other event is built from its typed payload (``engine.api``)."""
    return Event(rid, "error", {"message": message, **fields})


def _parse_object(line: str | bytes, *, finite: bool) -> dict[str, Any]:
    # Bounded in size and nesting before parsing: one deep line must not raise
    # RecursionError in the thread that reads the pipe. Requests (``finite``) are untrusted:
    # a key given twice ({"op": "ping", "op": "shutdown"}) is refused, not resolved.
    try:
        obj = safe_json.loads(line, max_bytes=MAX_LINE, finite=finite, unique_keys=finite)
    except safe_json.JsonRefused as exc:
        raise ProtocolError(str(exc)) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a line must be one JSON object")
    return obj


def decode_request(line: str | bytes) -> Request:
    """Parse a request line; ProtocolError says what is wrong with it (also a line too long,
    nested too deep, or holding a number out of range)."""
    obj = _parse_object(line, finite=True)
    rid, op, args = obj.get("id"), obj.get("op"), obj.get("args", {})
    if not isinstance(rid, str) or not rid:
        raise ProtocolError("a request needs a non-empty string 'id'")
    if not isinstance(op, str) or not op:
        raise ProtocolError("a request needs a string 'op'")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be an object")
    return Request(rid, op, args)


def read_lines(stream: BinaryIO, limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of a byte stream, each read into at most ``limit + 1`` bytes: the rest of a
    longer line is skipped unread, so it costs no memory and decodes as too long."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        rest = line
        while len(rest) > limit and not rest.endswith(b"\n"):
            rest = stream.readline(limit + 1)
        yield line


def request_id_of(line: str | bytes) -> str:
    """The id of a line that failed to decode, when one can still be read (else "")."""
    try:
        rid = safe_json.loads(line, max_bytes=MAX_LINE).get("id")
    except (ValueError, AttributeError, TypeError):
        return ""
    return rid if isinstance(rid, str) else ""


def decode_event(line: str | bytes) -> Event:
    """Parse an event line; ProtocolError says what is wrong with it."""
    obj = _parse_object(line, finite=False)  # the engine's own numbers may be NaN
    rid, kind = obj.pop("id", None), obj.pop("type", None)
    if not isinstance(rid, str) or kind not in EVENT_TYPES:
        raise ProtocolError("an event needs a string 'id' and a known 'type'")
    return Event(rid, kind, obj)


def replace_text(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` replaced by ``new`` in every string inside it (an event's data
    as one side of a relay names ids or paths and the other must read them)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: replace_text(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_text(v, old, new) for v in value]
    return value
