"""The remote engine through a real sshd on localhost (skipped with the reason where none can
run): what the user is told when ssh finds no Promptbank or no host. A training and a dropped
connection over ssh are in test_remote_engine (over the engine command where no sshd runs)."""

from __future__ import annotations

import pytest

from engine.server.client import WorkerDied
from tests.engine.remote.helpers import start_relay


def test_a_host_without_promptbank_is_named(tiny_model_dir, tmp_path, sshd, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    engine = ["--engine", f"ssh://{sshd.alias}/nowhere/bin/promptbank"]
    with pytest.raises(WorkerDied, match="not installed on promptbank-test"):
        start_relay(tiny_model_dir, tmp_path / "lib", engine, timeout=60)


def test_a_host_that_cannot_be_reached_is_named(tiny_model_dir, tmp_path):
    engine = ["--engine", "ssh://127.0.0.1:9"]
    with pytest.raises(WorkerDied, match=r"Could not connect to 127\.0\.0\.1"):
        start_relay(tiny_model_dir, tmp_path / "lib", engine, timeout=60)
