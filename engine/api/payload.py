"""The base of every event payload and how events turn back into payloads. Torch-free.

The worker builds an event from a payload (``payload.event(rid)``); a client turns an event
back into its payload with ``engine.api.registry.parse_event``. The JSON on the wire is the
payload's fields (plus ``kind`` for progress). Unknown fields are ignored when parsing, so an
older client can read a newer engine's events.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from engine.api.wire import Event, ProtocolError

P = TypeVar("P", bound="Payload")


@dataclass
class Payload:
    """Base of every event payload: ``EVENT`` is the event type, ``KIND`` the progress kind."""

    EVENT: ClassVar[str] = "result"
    KIND: ClassVar[str] = ""

    def to_data(self) -> dict[str, Any]:
        """The payload as the event's JSON fields."""
        data = dataclasses.asdict(self)
        return {"kind": self.KIND, **data} if self.KIND else data

    def event(self, rid: str) -> Event:
        """The event that carries this payload for request ``rid``."""
        return Event(rid, self.EVENT, self.to_data())

    @classmethod
    def from_data(cls: type[P], data: dict[str, Any]) -> P:
        """The payload from an event's fields; nested payloads are parsed too."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _parse_value(hints[f.name], data[f.name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ProtocolError(f"a '{cls.__name__}' event is missing a field: {exc}") from exc


def _payload_type(hint: Any) -> type[Payload] | None:
    plain = typing.get_origin(hint) is None and isinstance(hint, type)
    return hint if plain and issubclass(hint, Payload) else None


def _parse_value(hint: Any, value: Any) -> Any:
    """``value`` with nested payloads (a payload, a list of them, or optional) parsed."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return value if value is None or len(inner) != 1 else _parse_value(inner[0], value)
    nested = _payload_type(hint)
    if nested is not None and isinstance(value, dict):
        return nested.from_data(value)
    if origin is list and args and _payload_type(args[0]) and isinstance(value, list):
        return [args[0].from_data(v) if isinstance(v, dict) else v for v in value]
    return value
