"""A remote engine in tests: the relay started as the desktop starts it, reaching a "host"
that is this machine through ``--engine-command`` (or a real sshd), with its own folder."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from engine.server.client import Client, worker_argv
from tests.conftest import REAL_CACHE, TEST_DEVICE

ENV = {"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def host_command(host_home: Path) -> str:
    """The engine command of a host whose copies of libraries live in ``host_home``."""
    return shlex.join(["env", f"PROMPTBANK_REMOTE_HOME={host_home}", sys.executable, "-m",
                       "engine.cli"])


def relay_argv(model_dir: Path, library: Path, engine: list[str]) -> list[str]:
    """``promptbank --engine… worker`` on the tiny model and ``library``."""
    return worker_argv(str(model_dir), library, TEST_DEVICE, extra=engine)


def start_relay(model_dir: Path, library: Path, engine: list[str],
                timeout: float = 180) -> Client:
    """A client of the relay, connected (the host's worker said hello through it)."""
    client = Client(relay_argv(model_dir, library, engine), env=ENV, timeout=timeout)
    client.launch()
    return client
