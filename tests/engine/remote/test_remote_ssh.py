"""The remote engine through a real sshd on localhost (``ssh://`` addresses, the user's ssh
config, a host program at a path), skipped with the reason where no sshd can run."""

from __future__ import annotations

import pytest

from engine.library import Library
from engine.server.client import WorkerDied
from tests.engine.remote.helpers import (
    drop_then_reconnect,
    host_program,
    start_relay,
    stop_host_workers,
)
from tests.engine.worker_fixtures import train_config, write_sentiment


@pytest.fixture
def address(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    yield f"ssh://{sshd.alias}{host_program(tmp_path, tmp_path / 'host')}"
    stop_host_workers(tmp_path / "host")


def test_a_training_over_ssh_lands_here(tiny_model_dir, tmp_path, address):
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    with start_relay(tiny_model_dir, tmp_path / "lib", ["--engine", address]) as client:
        client.call("create_task", task="sent", kind="classify", data=str(data),
                    labels=["positive", "negative"])
        assert client.call("train", task="sent", config=train_config(4))["version"] == 1
        client.call("shutdown")
    lib = Library(tmp_path / "lib", read_only=True)
    version = lib.get_version("sent", None)
    host_copy = next((tmp_path / "host").glob(f"*/library/{version.path}")).read_bytes()
    assert lib.read_version_bytes(version) == host_copy
    lib.close()


def test_a_dropped_ssh_connection_loses_nothing(tiny_model_dir, tmp_path, address):
    drop_then_reconnect(tiny_model_dir, tmp_path, ["--engine", address])


def test_a_host_without_promptbank_is_named(tiny_model_dir, tmp_path, sshd, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    engine = ["--engine", f"ssh://{sshd.alias}/nowhere/bin/promptbank"]
    with pytest.raises(WorkerDied, match="not installed on promptbank-test"):
        start_relay(tiny_model_dir, tmp_path / "lib", engine, timeout=60)


def test_a_host_that_cannot_be_reached_is_named(tiny_model_dir, tmp_path):
    engine = ["--engine", "ssh://127.0.0.1:9"]
    with pytest.raises(WorkerDied, match=r"Could not connect to 127\.0\.0\.1"):
        start_relay(tiny_model_dir, tmp_path / "lib", engine, timeout=60)
