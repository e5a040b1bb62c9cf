"""The engine process (``promptbank worker``): one model copy, JSON lines on stdin/stdout.

A reader thread queues requests; the scheduler answers them first and otherwise advances the
running training job by one step. stdout carries only protocol lines (flushed); logs go to
stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import queue
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from engine.api import board
from engine.api.registry import OP_SPECS, validate_args
from engine.api.wire import (
    Event,
    ProtocolError,
    Request,
    decode_request,
    read_lines,
    replace_text,
    request_id_of,
)
from engine.server.context import Context
from engine.server.ops import HANDLERS
from engine.server.scheduler import (
    END_OF_INPUT,
    InputFailed,
    Malformed,
    Scheduler,
    one_line,
)
from engine.support.faults import release_memory
from engine.support.paths import library_dir
from engine.support.stdio import protocol_stdin, protocol_stdout

log = logging.getLogger("promptbank.worker")
#: A worker serving a socket (a remote engine's) ends after this long with nothing to do.
IDLE_EXIT_S = 1800.0
#: How a listening worker tags each client's request ids (``c3~``); ids that carry a tag name
#: another client's request.
CLIENT_TAG = re.compile(r"c\d+~")


class Worker:
    """The transport of the engine process: reads requests, hands each to its op's handler
    (``engine.server.ops``) with the shared context, and writes the events."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()
        self.client_gone = False
        self.listening = False
        """Serving a socket (``listen``): a client that goes away leaves the work running."""
        self.clients: dict[str, SocketClient] = {}
        self.ctx = Context(args, self.send)
        self.scheduler = Scheduler(self.send, self.handle,
                                   quick=lambda op: OP_SPECS[op].kind == "quick"
                                   if op in OP_SPECS else True,
                                   on_failure=lambda exc: release_memory())
        self.ctx.scheduler = self.scheduler

    def send(self, event: Event) -> None:
        """Write one protocol line and flush it.

        A closed pipe means the client went away (the desktop quit or died): that is no
        failure of the work in progress, so the worker stops as at the end of its input,
        checkpointing the running job, and writes nothing more.
        """
        tap = self.ctx.taps.get(event.id)
        if tap is not None:
            tap(event)
            return
        if self.listening:
            self._deliver(event)
            return
        line = event.encode()
        with self._lock:
            if self.client_gone:
                return
            try:
                self.out.write(line)
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                self.client_gone = True
                log.info("the client went away (%s); stopping", type(exc).__name__)
                self.scheduler.put(END_OF_INPUT)

    def handle(self, req: Request) -> None:
        """Validate a request and run its op (events go out through ``send``)."""
        if self.scheduler.in_progress(req.id):
            # Events under one id for two requests could not be told apart, so the refusal
            # goes out without an id too: the request in progress keeps its own events.
            self.send(Event("", "error", {"message": f"Malformed request: the id '{req.id}' "
                                          "belongs to a request still in progress; give "
                                          "each request its own id.", "request_id": req.id}))
            return
        try:
            args = validate_args(req.op, req.args)
        except ProtocolError as exc:
            self.send(Event(req.id, "error", {"message": str(exc)}))
            return
        HANDLERS[req.op](self.ctx, req.id, args)

    # --- the process ------------------------------------------------------------------

    def read(self, stream: BinaryIO, tag: str = "") -> None:
        """A reader thread: decode lines and queue them for the main loop (under ``tag``,
        a socket client's).

        A line that cannot be decoded, for whatever reason, is answered as a malformed
        request. If reading itself fails the main loop is told, and the worker exits so its
        client sees it gone and can start a fresh one. Serving a socket, the end of one
        client's lines ends nothing: the work goes on for the others and the next.
        """
        try:
            for line in read_lines(stream):
                if line.strip():
                    item = decode_line(line)
                    self.scheduler.put(tagged(item, tag) if tag else item)
        except BaseException as exc:
            if self.listening:
                log.info("a client's connection failed (%s)", one_line(exc))
                return
            log.error("reading requests failed:\n%s", traceback.format_exc())
            self.scheduler.put(InputFailed(one_line(exc)))
            return
        if not self.listening:
            self.scheduler.put(END_OF_INPUT)

    def serve(self, stream: BinaryIO) -> int:
        """Say hello, then serve requests from ``stream`` until shutdown or end of input;
        the exit status (1 when the input could no longer be read)."""
        self.send(self.ctx.hello().event(""))
        reader = threading.Thread(target=self.read, args=(stream,), name="reader", daemon=True)
        self.scheduler.input_alive = reader.is_alive
        reader.start()
        self.scheduler.run()
        return self.scheduler.exit_code


    def listen(self, path: Path, idle_exit_s: float = IDLE_EXIT_S) -> int:
        """Serve every client of a Unix socket at ``path`` until ``shutdown`` (a remote
        engine's worker, detached from the connections that use it). Clients come and go
        while the work goes on; each hears the events of its own requests, and ``jobs`` and
        ``watch`` show one client's jobs to another. With no client and no work for
        ``idle_exit_s`` it shuts down, giving back its memory."""
        self.listening = True
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path.unlink(missing_ok=True)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        accepting = threading.Thread(target=self._accept, args=(server,), name="accept",
                                     daemon=True)
        self.scheduler.input_alive = accepting.is_alive
        accepting.start()
        threading.Thread(target=self._exit_when_idle, args=(idle_exit_s,), name="idle",
                         daemon=True).start()
        threading.Thread(target=self._post, name="board", daemon=True).start()
        try:
            self.scheduler.run()
        finally:
            board.withdraw()
            path.unlink(missing_ok=True)
            server.close()
            for client in list(self.clients.values()):
                client.finish()
        return self.scheduler.exit_code

    def _exit_when_idle(self, idle_exit_s: float) -> None:
        idle_since: float | None = None
        while True:
            time.sleep(min(30.0, idle_exit_s / 4))
            idle = (not self.clients and not self.scheduler.busy()
                    and self.scheduler.long_op is None)
            idle_since = (idle_since or time.monotonic()) if idle else None
            if idle_since is not None and time.monotonic() - idle_since >= idle_exit_s:
                log.info("no client and no work for %.0f s; shutting down", idle_exit_s)
                self.scheduler.put(Request("idle", "shutdown", {}))
                return

    def _post(self) -> None:
        """Keep this worker's line on the host's board (other libraries' users see it)."""
        while self.scheduler.running:
            try:
                board.post(library_dir(self.ctx.args.library), self.ctx.device_line())
            except Exception as exc:  # a busy moment or a full disk: the next post may do
                log.info("could not post to the host's board: %s", one_line(exc))
            time.sleep(board.POST_EVERY_S)

    def _accept(self, server: socket.socket) -> None:
        for number in itertools.count(1):
            conn, _ = server.accept()
            client = SocketClient(f"c{number}~", conn, self._drop)
            client.put(self.ctx.hello().event(""))
            with self._lock:
                self.clients[client.tag] = client
            threading.Thread(target=self._serve_client, args=(client,),
                             name=f"reader-{client.tag}", daemon=True).start()

    def _serve_client(self, client: SocketClient) -> None:
        with client.conn.makefile("rb") as stream:
            self.read(stream, client.tag)
        self._drop(client)

    def _drop(self, client: SocketClient) -> None:
        with self._lock:
            self.clients.pop(client.tag, None)
        client.close()

    def _deliver(self, event: Event) -> None:
        """An event to the client whose request it answers (its tag taken off), or to every
        client when it answers none (a line that named no id)."""
        key = event.id or str(event.data.get("request_id", ""))
        with self._lock:
            clients = list(self.clients.values())
        owner = next((c for c in clients if key.startswith(c.tag)), None)
        if owner is not None:
            owner.put(Event(event.id.removeprefix(owner.tag), event.type,
                            replace_text(event.data, owner.tag, "")))
        elif not CLIENT_TAG.match(key):
            for client in clients:
                client.put(event)


class SocketClient:
    """One client of a listening worker: its tag (prefixed to its request ids) and a queue
    its own thread writes out, so a client that stops reading never stalls the engine."""

    BACKLOG = 10_000

    def __init__(self, tag: str, conn: socket.socket,
                 on_gone: Callable[[SocketClient], None]) -> None:
        self.tag = tag
        self.conn = conn
        self.on_gone = on_gone
        self.lines: queue.Queue[bytes | None] = queue.Queue(self.BACKLOG)
        self.writer = threading.Thread(target=self._write, name=f"writer-{tag}", daemon=True)
        self.writer.start()

    def put(self, event: Event) -> None:
        """Queue one event; a client this far behind is dropped (its work goes on)."""
        try:
            self.lines.put_nowait(event.encode().encode())
        except queue.Full:
            log.info("client %s stopped reading; dropping it", self.tag)
            self.on_gone(self)

    def finish(self, timeout: float = 10.0) -> None:
        """Write out what is queued (the answer to a ``shutdown``), then end the connection."""
        with contextlib.suppress(queue.Full):
            self.lines.put_nowait(None)
        self.writer.join(timeout)
        self.close()

    def close(self) -> None:
        """End the connection now (its reader and writer threads end with it)."""
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(queue.Full):
            self.lines.put_nowait(None)

    def _write(self) -> None:
        while (line := self.lines.get()) is not None:
            try:
                self.conn.sendall(line)
            except OSError:
                self.on_gone(self)
                return
        self.conn.close()


def tagged(item: Request | Malformed, tag: str) -> Request | Malformed:
    """A client's request under its connection's tag; a ``cancel`` or ``watch`` of one of
    its own requests names the tagged id (another client's job is named with its tag)."""
    if isinstance(item, Malformed):
        return Malformed(tag + item.id, item.message)
    args = item.args
    job = args.get("job")
    if item.op in ("cancel", "watch") and isinstance(job, str) and not CLIENT_TAG.match(job):
        args = {**args, "job": tag + job}
    return Request(tag + item.id, item.op, args)


def decode_line(line: bytes) -> Request | Malformed:
    """A request line decoded, or what the main loop answers instead: never an exception."""
    try:
        return decode_request(line)
    except ProtocolError as exc:
        return Malformed(request_id_of(line), str(exc))
    except Exception as exc:  # a defect of ours costs this one line, not the reader
        log.error("could not decode a request line:\n%s", traceback.format_exc())
        return Malformed(request_id_of(line), one_line(exc))


def run(args: argparse.Namespace) -> int:
    """Serve stdin/stdout until ``shutdown`` or end of input (or, given ``--listen``, the
    clients of that socket until ``shutdown``)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="worker: %(message)s")
    if getattr(args, "listen", None):
        return Worker(args, out=sys.stderr).listen(Path(args.listen),
                                                   args.idle_exit or IDLE_EXIT_S)
    return Worker(args, out=protocol_stdout()).serve(protocol_stdin())
