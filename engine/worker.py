"""The engine process (``promptbank worker``): one model, requests and events as JSON lines.

stdout carries only protocol lines; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import TextIO

from engine import __version__
from engine.errors import PromptbankError
from engine.protocol import PROTOCOL_VERSION, Event, ProtocolError, Request, decode_request

log = logging.getLogger("promptbank.worker")


class Worker:
    """Reads requests, answers them in order with the one loaded model."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.host = None
        self.running = True

    def send(self, event: Event) -> None:
        self.out.write(event.encode())
        self.out.flush()

    def ensure_model(self, rid: str):
        if self.host is None:
            from engine.model import ModelHost

            def progress(stage: str, fraction: float) -> None:
                self.send(Event(rid, "progress", {"stage": stage, "fraction": fraction}))

            self.host = ModelHost(self.args.model, device=self.args.device,
                                  trust_remote_code=self.args.trust_remote_code,
                                  progress=progress)
        return self.host

    def hello(self, rid: str) -> dict:
        info = self.host.info().to_dict() if self.host else None
        return {"protocol": PROTOCOL_VERSION, "engine": __version__, "model": info}

    def handle(self, req: Request) -> None:
        if req.op == "ping":
            self.send(Event(req.id, "result", {"pong": True}))
        elif req.op == "hello":
            self.send(Event(req.id, "result", self.hello(req.id)))
        elif req.op in ("model_info", "load_model"):
            self.send(Event(req.id, "result", self.ensure_model(req.id).info().to_dict()))
        elif req.op == "shutdown":
            self.running = False
            self.send(Event(req.id, "result", {"bye": True}))
        else:
            self.send(Event(req.id, "error", {"message": f"Unknown op '{req.op}'."}))

    def serve(self, stream: TextIO) -> None:
        self.send(Event("", "hello", self.hello("")))
        for line in stream:
            if not line.strip():
                continue
            try:
                req = decode_request(line)
            except ProtocolError as exc:
                self.send(Event("", "error", {"message": f"Malformed request: {exc}."}))
                continue
            try:
                self.handle(req)
            except PromptbankError as exc:
                self.send(Event(req.id, "error", {"message": str(exc)}))
            except Exception as exc:
                log.error("request %s failed:\n%s", req.id, traceback.format_exc())
                self.send(Event(req.id, "error", {"message": f"{type(exc).__name__}: {exc}"}))
            if not self.running:
                break


def run(args: argparse.Namespace) -> int:
    """Serve stdin/stdout until ``shutdown`` or end of input."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="worker: %(message)s")
    Worker(args).serve(sys.stdin)
    return 0
