"""A plain-Python client of the engine process (tests, scripts, the CLI's engine mode).

``Client.start(...)`` runs ``python -m engine.cli ... worker`` as a child process;
``Client.attach(stdin, stdout)`` speaks to one already running. ``request`` returns an
iterator over that request's events; ``call`` waits for the result. A worker that dies is
noticed (``WorkerDied``), and ``restart`` starts a fresh one. Torch-free.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

from engine.api.launch import child_env, module_command
from engine.api.wire import Event, ProtocolError, Request, decode_event
from engine.errors import PromptbankError

_DEAD = object()


class WorkerDied(PromptbankError):
    """The engine process ended while a request was waiting."""


class RequestFailed(PromptbankError):
    """The engine answered a request with an ``error`` event."""

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.event = event


def worker_argv(model: str, library: str | os.PathLike[str] | None = None,
                device: str = "auto", extra: list[str] | None = None,
                python: str | os.PathLike[str] | None = None) -> list[str]:
    """The command line that starts a worker with this interpreter (or ``python``)."""
    argv = [*module_command("engine.cli", python), "--model", str(model), "--device", device]
    if library is not None:
        argv += ["--library", str(library)]
    return [*argv, *(extra or []), "worker"]


class RequestHandle:
    """The events of one request, as an iterator that ends after the final one."""

    def __init__(self, client: Client, rid: str) -> None:
        self.client = client
        self.id = rid
        self.events: queue.Queue[Any] = queue.Queue()
        self.finished: Event | None = None

    def next_event(self, timeout: float | None = None) -> Event:
        """The next event; WorkerDied if the worker ended, TimeoutError after ``timeout``."""
        if self.finished is not None:
            raise StopIteration
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty as exc:
            raise TimeoutError(f"no event for request {self.id} within {timeout} s") from exc
        if item is _DEAD:
            self.client._forget(self.id)
            raise WorkerDied(f"The engine process stopped while request {self.id} was "
                             f"waiting ({self.client.death_reason()}).",
                             hint="Restart it; resume interrupted runs with 'resume'.")
        if item.final:
            self.finished = item
            self.client._forget(self.id)
        return item

    def __iter__(self) -> Iterator[Event]:
        while self.finished is None:
            yield self.next_event(self.client.timeout)

    def result(self) -> dict[str, Any]:
        """Wait for the end; the result's fields, or RequestFailed with the error message."""
        for _ in self:
            pass
        assert self.finished is not None
        if self.finished.type == "error":
            raise RequestFailed(self.finished.message, self.finished)
        return self.finished.data


class Client:
    """Talks JSON lines to one worker; thread-safe sends, one reader thread."""

    def __init__(self, argv: list[str] | None = None, *, env: dict[str, str] | None = None,
                 timeout: float | None = 300.0, cwd: str | os.PathLike[str] | None = None,
                 python: str | os.PathLike[str] | None = None) -> None:
        self.argv = argv
        self.python = python
        """The interpreter ``argv`` runs when it is not this one (the GPU engine's)."""
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.hello: Event | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[str, RequestHandle] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._writer: IO[bytes] | None = None
        self._alive = False
        self._reader: threading.Thread | None = None
        self._stderr_reader: threading.Thread | None = None
        self.unsolicited: queue.Queue[Any] = queue.Queue()
        """Events with no waiting request (the hello, errors about malformed lines)."""

    # --- starting and attaching -------------------------------------------------------

    @classmethod
    def start(cls, model: str = "default", library: str | os.PathLike[str] | None = None,
              device: str = "auto", python: str | os.PathLike[str] | None = None,
              **kwargs: Any) -> Client:
        """Start a worker child process (on ``python``, if given) and wait for its ``hello``."""
        client = cls(worker_argv(model, library, device, python=python), python=python,
                     **kwargs)
        client.launch()
        return client

    @classmethod
    def attach(cls, stdin: IO[bytes], stdout: IO[bytes], **kwargs: Any) -> Client:
        """Speak to a worker through its pipes (its stdin to write, its stdout to read)."""
        client = cls(**kwargs)
        client._connect(stdin, stdout)
        return client

    def launch(self) -> None:
        """Start the worker process (``argv``) and wait for its ``hello`` event."""
        if self.argv is None:
            raise PromptbankError("This client was attached to a worker; it cannot start one.")
        env = child_env(self.python, {**os.environ, **(self.env or {})})
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=self.cwd)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._stderr_reader = threading.Thread(target=self._read_stderr,
                                               args=(self.proc.stderr,), daemon=True,
                                               name="worker-stderr")
        self._stderr_reader.start()
        self._connect(self.proc.stdin, self.proc.stdout)

    def _connect(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._writer = stdin
        self._alive = True
        self.hello = None
        self.unsolicited = queue.Queue()
        self._reader = threading.Thread(target=self._read_events,
                                        args=(stdout, self.unsolicited), daemon=True,
                                        name="worker-events")
        self._reader.start()
        try:
            event = self.unsolicited.get(timeout=self.timeout)
        except queue.Empty as exc:
            raise WorkerDied("The engine process did not say hello in time.") from exc
        if not isinstance(event, Event) or event.type != "hello":
            self._settle()
            raise WorkerDied(f"The engine process did not start ({self.death_reason()}).",
                             hint="Run `promptbank worker` by hand to see why.")
        self.hello = event

    def restart(self) -> None:
        """Stop the worker (killing it if it hangs) and start a fresh one."""
        if self.argv is None:
            raise PromptbankError("This client was attached to a worker; it cannot start one.")
        self.kill()
        self.launch()

    # --- reading --------------------------------------------------------------------------

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            if os.environ.get("PROMPTBANK_WORKER_LOG"):
                print(line, file=sys.stderr)

    def _read_events(self, stream: IO[bytes], unsolicited: queue.Queue[Any]) -> None:
        # Whatever ends this thread, every waiting request hears that the worker is gone.
        try:
            for raw in stream:
                if raw.strip():
                    self._route(raw, unsolicited)
        finally:
            with self._lock:
                self._alive = False
                handles = list(self._pending.values())
            for handle in handles:
                handle.events.put(_DEAD)
            unsolicited.put(_DEAD)

    def _route(self, raw: bytes, unsolicited: queue.Queue[Any]) -> None:
        try:
            event = decode_event(raw)
        except ProtocolError as exc:
            self._stderr.append(f"unreadable engine line ({exc}): {raw[:200]!r}")
            return
        with self._lock:
            handle = self._pending.get(event.id)
        if handle is not None:
            handle.events.put(event)
        else:
            unsolicited.put(event)

    def _forget(self, rid: str) -> None:
        with self._lock:
            self._pending.pop(rid, None)

    def _settle(self) -> None:
        """Give a worker that is ending a moment to exit and finish its log, so the reason
        given is its last word rather than whatever it had written when its output closed."""
        if self.proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self._stderr_reader is not None:
            self._stderr_reader.join(timeout=2)

    def death_reason(self) -> str:
        """Why the worker is gone: exit status and the last lines of its log."""
        parts = []
        if self.proc is not None:
            code = self.proc.poll()
            if code is not None:
                parts.append(f"exit status {code}")
        tail = [line for line in self._stderr if line.strip()][-3:]
        if tail:
            parts.append("last log: " + " | ".join(tail))
        return "; ".join(parts) or "its output closed"

    # --- requests ---------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the worker's output is open (and its process, if ours, runs)."""
        return self._alive and (self.proc is None or self.proc.poll() is None)

    def request(self, op: str, args: dict[str, Any] | None = None,
                rid: str | None = None) -> RequestHandle:
        """Send a request; iterate the returned handle for its events."""
        rid = rid or f"c{next(self._ids)}"
        handle = RequestHandle(self, rid)
        with self._lock:
            if not self._alive:
                raise WorkerDied(f"The engine process is not running ({self.death_reason()}).",
                                 hint="Call restart() to start a fresh one.")
            self._pending[rid] = handle
        self.send_line(Request(rid, op, args or {}).encode())
        return handle

    def send_line(self, line: str | bytes) -> None:
        """Write one raw line to the worker (tests use it for malformed input)."""
        assert self._writer is not None
        try:
            with self._lock:
                self._writer.write(line.encode() if isinstance(line, str) else line)
                self._writer.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(f"The engine process is not running ({self.death_reason()}).",
                             hint="Call restart() to start a fresh one.") from exc

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send a request and return its result's fields (RequestFailed on an error)."""
        return self.request(op, args).result()

    # --- stopping -------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Ask the worker to shut down (it checkpoints a running job); kill it if it hangs."""
        if self.alive:
            with contextlib.suppress(PromptbankError):
                self.request("shutdown").result()
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """End the worker process at once (no checkpoint)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._alive = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
