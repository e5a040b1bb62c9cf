"""EngineProcess: starts ``promptbank worker`` with QProcess and speaks the JSON-lines protocol."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

from engine.protocol import Event, ProtocolError, Request, decode_event

EventHandler = Callable[[Event], None]


class EngineProcess(QObject):
    """The engine worker as a child process; events arrive as Qt signals on the GUI thread."""

    sig_event = Signal(object)
    """Every event the engine sends (an ``engine.protocol.Event``)."""
    sig_state = Signal(str, str)
    """Engine state changed: (state, detail); state is starting, ready, busy, error or stopped."""
    sig_stderr = Signal(str)
    """A log line the engine wrote to stderr."""

    def __init__(self, worker_args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker_args = worker_args
        self.state = "stopped"
        self._ids = itertools.count(1)
        self._handlers: dict[str, EventHandler] = {}
        self._buffer = b""
        self._stopping = False
        self.proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        self.proc.setProcessEnvironment(env)
        self.proc.readyReadStandardOutput.connect(self._read_stdout)
        self.proc.readyReadStandardError.connect(self._read_stderr)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)

    def start(self) -> None:
        """Start the worker (no-op if it runs)."""
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            return
        self._stopping = False
        self._buffer = b""
        self._set_state("starting", "starting the engine")
        self.proc.start(sys.executable, ["-m", "engine.cli", *self.worker_args, "worker"])

    def request(self, op: str, args: dict | None = None,
                handler: EventHandler | None = None) -> str:
        """Send a request; ``handler`` gets each of its events. Returns the request id."""
        rid = f"r{next(self._ids)}"
        if handler is not None:
            self._handlers[rid] = handler
        self.proc.write(Request(rid, op, args or {}).encode().encode())
        return rid

    def stop(self, timeout_ms: int = 3000) -> None:
        """Ask the worker to shut down; kill it if it does not within ``timeout_ms``."""
        if self.proc.state() == QProcess.ProcessState.NotRunning:
            return
        self._stopping = True
        self.request("shutdown")
        if not self.proc.waitForFinished(timeout_ms):
            self.proc.kill()
            self.proc.waitForFinished(1000)

    def _set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.sig_state.emit(state, detail)

    def _read_stdout(self) -> None:
        self._buffer += bytes(self.proc.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = decode_event(line)
            except ProtocolError as exc:
                self.sig_stderr.emit(f"unreadable engine line ({exc}): {line[:200]!r}")
                continue
            if event.type == "hello":
                self._set_state("ready", "")
            handler = self._handlers.get(event.id)
            if handler is not None:
                handler(event)
                if event.final:
                    self._handlers.pop(event.id, None)
            self.sig_event.emit(event)

    def _read_stderr(self) -> None:
        text = bytes(self.proc.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self.sig_stderr.emit(line)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self._stopping:
            self._set_state("stopped", "")
        else:
            self._set_state("error", f"the engine stopped unexpectedly (exit code {code})")
        self._handlers.clear()

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._set_state("error", "the engine could not be started")
