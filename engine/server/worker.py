"""The engine process (``promptbank worker``): one model copy, JSON lines on stdin/stdout.

A reader thread queues requests; the scheduler answers them first and otherwise advances the
running training job by one step. stdout carries only protocol lines (flushed); logs go to
stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from typing import BinaryIO, TextIO

from engine.api.registry import OP_SPECS, validate_args
from engine.api.wire import (
    Event,
    ProtocolError,
    Request,
    decode_request,
    read_lines,
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

log = logging.getLogger("promptbank.worker")


class Worker:
    """The transport of the engine process: reads requests, hands each to its op's handler
    (``engine.server.ops``) with the shared context, and writes the events."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.out = out
        self._lock = threading.Lock()
        self.client_gone = False
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

    def read(self, stream: BinaryIO) -> None:
        """The reader thread: decode lines and queue them for the main loop.

        A line that cannot be decoded, for whatever reason, is answered as a malformed
        request. If reading itself fails the main loop is told, and the worker exits so its
        client sees it gone and can start a fresh one.
        """
        try:
            for line in read_lines(stream):
                if line.strip():
                    self.scheduler.put(decode_line(line))
        except BaseException as exc:
            log.error("reading requests failed:\n%s", traceback.format_exc())
            self.scheduler.put(InputFailed(one_line(exc)))
            return
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


def decode_line(line: bytes) -> Request | Malformed:
    """A request line decoded, or what the main loop answers instead: never an exception."""
    try:
        return decode_request(line)
    except ProtocolError as exc:
        return Malformed(request_id_of(line), str(exc))
    except Exception as exc:  # a defect of ours costs this one line, not the reader
        log.error("could not decode a request line:\n%s", traceback.format_exc())
        return Malformed(request_id_of(line), one_line(exc))


def protocol_stdout() -> TextIO:
    """A private handle on the real stdout; fd 1 and ``sys.stdout`` then point at stderr.

    Stray prints (ours or a library's, even from C) can then never corrupt the protocol.
    """
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def run(args: argparse.Namespace) -> int:
    """Serve stdin/stdout until ``shutdown`` or end of input."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="worker: %(message)s")
    # A private handle on stdin: the interpreter, exiting, must not wait for the lock of a
    # stream the reader thread is blocked in (that aborts the process).
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return Worker(args, out=protocol_stdout()).serve(requests)
