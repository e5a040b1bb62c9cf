"""run_in_thread: run a plain function on Qt's thread pool, results back on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import PromptbankError


class _Relay(QObject):
    """Carries a background result to the GUI thread (signals cross threads safely)."""

    sig_done = Signal(object)
    """The function returned this value."""
    sig_failed = Signal(str)
    """The function raised; the message is for the user."""


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn = fn
        self.relay = relay

    def run(self) -> None:
        # Only plain data leaves this thread: widgets are touched by the slots on the GUI side.
        try:
            value = self.fn()
        except PromptbankError as exc:
            self.relay.sig_failed.emit(str(exc))
        except Exception as exc:  # a bug or an OS error: still shown, never silently lost
            self.relay.sig_failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.relay.sig_done.emit(value)


def run_in_thread(fn: Callable[[], Any], on_done: Callable[[Any], None],
                  on_failed: Callable[[str], None], parent: QObject) -> _Relay:
    """Run ``fn()`` off the GUI thread; ``on_done(value)`` or ``on_failed(message)`` follow."""
    relay = _Relay(parent)
    relay.sig_done.connect(on_done)
    relay.sig_failed.connect(on_failed)
    relay.sig_done.connect(relay.deleteLater)
    relay.sig_failed.connect(relay.deleteLater)
    QThreadPool.globalInstance().start(_Task(fn, relay))
    return relay
