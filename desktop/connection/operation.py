"""EngineOp: one engine request with success, failure, progress and token callbacks.

Modelled on Anki's ``CollectionOp``: the caller says what to do on each outcome and never
waits; every callback runs on the GUI thread (events arrive through QProcess signals) and
gets the event's typed payload (``engine.api``), never a raw dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop.connection.process import EngineProcess
from engine.api.generation import Token
from engine.api.payload import Payload
from engine.api.registry import parse_event
from engine.api.wire import Event, ProtocolError

Callback = Callable[[Any], None]


def _ignore(payload: Payload) -> None:
    """A callback that does nothing."""


def _ignore_error(message: str) -> None:
    """A failure callback that does nothing."""


@dataclass
class EngineOp:
    """Build with the ``on_*`` methods, then ``run()``; ``id`` is set once sent."""

    engine: EngineProcess
    op: str
    args: dict = field(default_factory=dict)
    id: str = ""
    finished: bool = False
    _success: Callback = _ignore
    _failure: Callable[[str], None] = _ignore_error
    _progress: Callback = _ignore
    _token: Callable[[Token], None] = _ignore

    def on_success(self, fn: Callback) -> EngineOp:
        """``fn(result)`` with the op's result payload when the engine answers."""
        self._success = fn
        return self

    def on_failure(self, fn: Callable[[str], None]) -> EngineOp:
        """``fn(message)`` when the engine answers with an error or goes away."""
        self._failure = fn
        return self

    def on_progress(self, fn: Callback) -> EngineOp:
        """``fn(progress)`` with each progress payload (StepProgress, RowsProgress, …)."""
        self._progress = fn
        return self

    def on_token(self, fn: Callable[[Token], None]) -> EngineOp:
        """``fn(token)`` for each streamed piece of text."""
        self._token = fn
        return self

    def run(self) -> EngineOp:
        """Send the request; the callbacks fire as events arrive."""
        self.id = self.engine.request(self.op, self.args, handler=self._handle)
        return self

    def detach(self) -> None:
        """Drop the callbacks (the widget that asked is closing or asked again)."""
        self.engine.forget(self.id)

    def _handle(self, event: Event) -> None:
        if event.type == "error":
            self.finished = True
            self._failure(event.message or "The engine reported an unknown error.")
            return
        if event.type not in ("result", "progress", "token"):
            return
        try:
            payload = parse_event(self.op, event)
        except ProtocolError as exc:
            if event.final:
                self.finished = True
                self._failure(f"The engine's answer could not be read ({exc}).")
            return
        if event.type == "result":
            self.finished = True
            self._success(payload)
        elif event.type == "progress":
            self._progress(payload)
        else:
            self._token(payload)
