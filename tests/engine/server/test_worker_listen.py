"""``promptbank worker --listen``: a worker that serves a socket, outlives its clients, lets
a new client take over, and ends by itself once nothing is left to do."""

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


def test_a_new_client_takes_over_and_an_idle_worker_ends(tiny_model_dir, tmp_path):
    path = tmp_path / "w.sock"
    argv = worker_argv(str(tiny_model_dir), tmp_path / "lib", TEST_DEVICE)
    proc = subprocess.Popen([*argv, "--listen", str(path), "--idle-exit", "2"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1",
                                 "PATH": "/usr/bin:/bin", "PYTHONPATH": str(SOURCE)})
    _first, first_events = _connect(path)
    assert decode_event(first_events.readline()).type == "hello"
    second, second_events = _connect(path)
    assert decode_event(second_events.readline()).type == "hello"
    assert first_events.readline() == b""  # the first client was let go
    second.sendall(Request("p1", "ping").encode().encode())
    assert decode_event(second_events.readline()).data == {"pong": True}
    second.shutdown(socket.SHUT_RDWR)  # the client goes away
    assert proc.poll() is None  # a client leaving ends nothing
    assert proc.wait(60) == 0  # …but two idle seconds later the worker gives back its memory
    assert not path.exists()
    assert b"no client and no work" in proc.stderr.read()
