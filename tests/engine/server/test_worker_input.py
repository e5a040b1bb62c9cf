"""The worker's reader never goes deaf: every bad line is answered, and a reader that fails
ends the worker (exit status 1), so its client sees it gone and can start a fresh one."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from engine.api.wire import MAX_LINE
from engine.server.worker import Worker
from tests.conftest import TEST_DEVICE


def in_process(tmp_path: Path) -> tuple[Worker, io.StringIO]:
    out = io.StringIO()
    args = argparse.Namespace(model="unused", device=TEST_DEVICE, dtype="auto",
                              library=tmp_path / "library", trust_remote_code=False)
    return Worker(args, out=out), out


def answers(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_bad_lines_are_answered_and_the_next_request_still_is(tmp_path):
    worker, out = in_process(tmp_path)
    lines = [
        b'{"id": "deep", "op": "ping", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        b'{"id": "utf", "op": "ping", "args": {"x": "\xff\xfe"}}\n',
        b'{"id": "big", "op": "generate", "args": {"text": "a", "seed": 1' + b"0" * 40 + b"}}\n",
        b'{"id": "long", "op": "ping", "x": "' + b"y" * (MAX_LINE + 10) + b'"}\n',
        b'{"id": "p", "op": "ping"}\n',
    ]
    assert worker.serve(io.BytesIO(b"".join(lines))) == 0  # end of input: a clean exit
    got = answers(out)
    assert got[0]["type"] == "hello"
    errors = [e for e in got if e["type"] == "error"]
    assert [e["message"] for e in errors] == [
        "Malformed request: nested deeper than 64 levels.",
        "Malformed request: not UTF-8 text.",
        f"Malformed request: a number too large (1{'0' * 19}…).",
        f"Malformed request: longer than {MAX_LINE:,} bytes ({MAX_LINE + 1:,}).",
    ]
    assert [e["id"] for e in errors] == ["", "", "big", ""]
    assert got[-1] == {"pong": True, "id": "p", "type": "result"}


def test_a_defect_in_decoding_costs_one_line_not_the_reader(tmp_path, monkeypatch):
    worker, out = in_process(tmp_path)
    calls = []

    def broken(line: bytes):
        calls.append(line)
        if len(calls) == 1:
            raise RecursionError("maximum recursion depth exceeded")
        return real(line)

    from engine.server import worker as worker_module

    real = worker_module.decode_request
    monkeypatch.setattr(worker_module, "decode_request", broken)
    worker.serve(io.BytesIO(b'{"id": "a", "op": "ping"}\n{"id": "b", "op": "ping"}\n'))
    got = answers(out)[1:]
    assert got[0] == {"message": "Malformed request: RecursionError: maximum recursion depth "
                      "exceeded.", "id": "a", "type": "error"}
    assert got[1] == {"pong": True, "id": "b", "type": "result"}


class FailingInput(io.BytesIO):
    """Input that breaks after its bytes are read, as a terminal that hangs up does."""

    def readline(self, size: int = -1) -> bytes:
        line = super().readline(size)
        if not line:
            raise OSError(5, "Input/output error")
        return line


def test_a_reader_that_fails_ends_the_worker_with_status_1(tmp_path):
    worker, out = in_process(tmp_path)
    assert worker.serve(FailingInput(b'{"id": "p", "op": "ping"}\n')) == 1
    assert answers(out)[-1] == {"pong": True, "id": "p", "type": "result"}
