"""EngineProcess: starts ``promptbank worker`` with QProcess and speaks the JSON-lines protocol."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engine.api.launch import child_env, module_command
from engine.api.session import Hello
from engine.api.wire import Event, ProtocolError, Request, decode_event

EventHandler = Callable[[Event], None]
STDERR_TAIL = 40


class EngineProcess(QObject):
    """The engine worker as a child process; events arrive as Qt signals on the GUI thread."""

    sig_event = Signal(object)
    """Every event the engine sends (an ``engine.api.wire.Event``)."""
    sig_state = Signal(str, str)
    """Engine state changed: (state, detail); state is starting, ready, error or stopped."""
    sig_stderr = Signal(str)
    """A log line the engine wrote to stderr."""
    sig_crashed = Signal(str)
    """The engine stopped without being asked to; the argument says why in plain words."""
    sig_fallback = Signal(str)
    """The GPU engine did not start, so the CPU engine was started instead; says why."""

    def __init__(self, worker_args: list[str], parent: QObject | None = None,
                 python: str | None = None) -> None:
        super().__init__(parent)
        self.worker_args = worker_args
        self.python = python
        """The GPU engine's interpreter, or None for the app's own (the CPU engine)."""
        self.fallback_reason = ""
        """Why the GPU engine was given up for the CPU engine ("" when it was not)."""
        self.state = "stopped"
        self.hello: Hello | None = None
        self._ids = itertools.count(1)
        self._handlers: dict[str, EventHandler] = {}
        self._buffer = b""
        self._stopping = False
        self._stderr_tail: list[str] = []
        self.proc = QProcess(self)
        self.proc.readyReadStandardOutput.connect(self._read_stdout)
        self.proc.readyReadStandardError.connect(self._read_stderr)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)

    @property
    def running(self) -> bool:
        """True while the worker process exists."""
        return self.proc.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        """The worker's process id (0 when not running)."""
        return int(self.proc.processId()) if self.running else 0

    def start(self) -> None:
        """Start the worker (no-op if it runs)."""
        if self.running:
            return
        self._stopping = False
        self._buffer = b""
        self._stderr_tail = []
        self._set_state("starting", "starting the engine")
        env = QProcessEnvironment()
        for key, value in child_env(self.python).items():
            env.insert(key, value)
        self.proc.setProcessEnvironment(env)
        program, *args = module_command("engine.cli", self.python)
        self.proc.start(program, [*args, *self.worker_args, "worker"])

    def restart(self, worker_args: list[str] | None = None) -> None:
        """Stop the worker if it runs, then start it again (optionally with new options)."""
        self.stop()
        if worker_args is not None:
            self.worker_args = worker_args
        self.start()

    def request(self, op: str, args: dict | None = None,
                handler: EventHandler | None = None) -> str:
        """Send a request; ``handler`` gets each of its events. Returns the request id.

        When the engine is not running the handler gets an ``error`` event at once.
        """
        rid = f"r{next(self._ids)}"
        if not self.running:
            if handler is not None:
                handler(Event(rid, "error", {"message": "The engine is not running."}))
            return rid
        if handler is not None:
            self._handlers[rid] = handler
        self.proc.write(Request(rid, op, args or {}).encode().encode())
        return rid

    def forget(self, rid: str) -> None:
        """Stop delivering events of request ``rid`` (its owner went away)."""
        self._handlers.pop(rid, None)

    def forget_all(self) -> None:
        """Stop delivering events of every open request (the window is closing)."""
        self._handlers.clear()

    def stop(self, timeout_ms: int = 3000) -> None:
        """Ask the worker to shut down; kill it if it does not within ``timeout_ms``."""
        if not self.running:
            return
        self._stopping = True
        self.request("shutdown")
        if not self.proc.waitForFinished(timeout_ms):
            self.proc.kill()
            self.proc.waitForFinished(1000)

    def kill(self) -> None:
        """Kill the worker at once, as a crash would (used by tests and 'Force stop')."""
        if self.running:
            self.proc.kill()

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
                self.hello = Hello.from_data(event.data)
                self._set_state("ready", "")
            self._deliver(event)
            self.sig_event.emit(event)

    def _deliver(self, event: Event) -> None:
        handler = self._handlers.get(event.id)
        if handler is None:
            return
        if event.final:
            self._handlers.pop(event.id, None)
        handler(event)

    def _read_stderr(self) -> None:
        text = bytes(self.proc.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr_tail = [*self._stderr_tail[-STDERR_TAIL:], line]
                self.sig_stderr.emit(line)

    def _crash_reason(self, code: int, status: QProcess.ExitStatus) -> str:
        if status == QProcess.ExitStatus.CrashExit:
            why = "the engine process crashed or was killed"
        else:
            why = f"the engine stopped unexpectedly (exit code {code})"
        last = next((ln for ln in reversed(self._stderr_tail)
                     if "Error" in ln or "error" in ln), "")
        return f"{why}: {last.strip()}" if last else why

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        pending, self._handlers = self._handlers, {}
        if self._stopping:
            self._set_state("stopped", "")
            message = "The engine was stopped."
        elif self.state == "starting" and self.python:
            message = self._fall_back(self._crash_reason(code, status))
        else:
            message = self._crash_reason(code, status)
            self._set_state("error", message)
            self.sig_crashed.emit(message)
            message = f"The request was lost because {message}."
        for rid, handler in pending.items():
            handler(Event(rid, "error", {"message": message}))

    def _fall_back(self, why: str) -> str:
        # A GPU engine that cannot start must not cost the user the working CPU engine.
        self.fallback_reason = (f"The GPU engine did not start ({why}); the CPU engine is "
                                "used instead.")
        self.python = None
        self.sig_stderr.emit(self.fallback_reason)
        self.sig_fallback.emit(self.fallback_reason)
        QTimer.singleShot(0, self.start)  # not from inside the dead process's own signal
        return self.fallback_reason

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.python:
            self._fall_back("its Python could not be run")
        elif error == QProcess.ProcessError.FailedToStart:
            message = "the engine could not be started (is Promptbank installed correctly?)"
            self._set_state("error", message)
            self.sig_crashed.emit(message)
