"""EngineOp: one engine request with success, failure, progress and token callbacks.

Modelled on Anki's ``CollectionOp``: the caller says what to do on each outcome and never
waits; every callback runs on the GUI thread (events arrive through QProcess signals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from desktop.engine.process import EngineProcess
from engine.protocol import Event

Callback = Callable[[dict], None]


def _ignore(data: dict) -> None:
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
    _token: Callback = _ignore

    def on_success(self, fn: Callback) -> EngineOp:
        """``fn(result_data)`` when the engine answers with a result."""
        self._success = fn
        return self

    def on_failure(self, fn: Callable[[str], None]) -> EngineOp:
        """``fn(message)`` when the engine answers with an error or goes away."""
        self._failure = fn
        return self

    def on_progress(self, fn: Callback) -> EngineOp:
        """``fn(progress_data)`` for each progress event."""
        self._progress = fn
        return self

    def on_token(self, fn: Callback) -> EngineOp:
        """``fn(token_data)`` for each streamed token event."""
        self._token = fn
        return self

    def run(self) -> EngineOp:
        """Send the request; the callbacks fire as events arrive."""
        self.id = self.engine.request(self.op, self.args, handler=self._handle)
        return self

    def detach(self) -> None:
        """Drop the callbacks (the widget that asked is closing)."""
        self.engine.forget(self.id)

    def _handle(self, event: Event) -> None:
        if event.type == "result":
            self.finished = True
            self._success(event.data)
        elif event.type == "error":
            self.finished = True
            message = event.data.get("message") or "The engine reported an unknown error."
            self._failure(str(message))
        elif event.type == "progress":
            self._progress(event.data)
        elif event.type == "token":
            self._token(event.data)
