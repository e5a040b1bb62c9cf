"""``promptbank worker --listen``: a worker that serves a socket to several clients at once,
outlives them, and ends by itself once nothing is left to do."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from engine.api.wire import Request, decode_event
from engine.server.client import worker_argv
from tests.conftest import REAL_CACHE, TEST_DEVICE

SOURCE = Path(__file__).resolve().parents[3]


def _connect(path):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 60
    while True:
        try:
            conn.connect(str(path))
            return conn, conn.makefile("rb")
        except OSError:
            assert time.monotonic() < deadline, "the worker never listened"
            time.sleep(0.1)


def _event(events):
    return decode_event(events.readline())


def test_clients_share_the_worker_and_an_idle_worker_ends(tiny_model_dir, tmp_path):
    path = tmp_path / "w.sock"
    argv = worker_argv(str(tiny_model_dir), tmp_path / "lib", TEST_DEVICE)
    proc = subprocess.Popen([*argv, "--listen", str(path), "--idle-exit", "2"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1",
                                 "PATH": "/usr/bin:/bin", "PYTHONPATH": str(SOURCE)})
    first, first_events = _connect(path)
    assert _event(first_events).type == "hello"
    second, second_events = _connect(path)
    assert _event(second_events).type == "hello"
    # The same request id from both: each hears its own answer, under its own id.
    first.sendall(Request("p1", "ping").encode().encode())
    second.sendall(Request("p1", "library_info").encode().encode())
    assert (_event(first_events).id, _event(second_events).id) == ("p1", "p1")
    second.sendall(Request("j", "jobs").encode().encode())
    assert _event(second_events).data["jobs"] == []
    first.shutdown(socket.SHUT_RDWR)  # one client leaving ends nothing for the other
    second.sendall(Request("p2", "ping").encode().encode())
    assert _event(second_events).data == {"pong": True}
    second.shutdown(socket.SHUT_RDWR)  # the last client goes away
    assert proc.poll() is None  # a client leaving ends nothing
    assert proc.wait(60) == 0  # …but two idle seconds later the worker gives back its memory
    assert not path.exists()
    assert b"no client and no work" in proc.stderr.read()
