"""A remote engine in tests: the relay started as the desktop starts it, reaching a "host"
that is this machine through ``--engine-command`` (or a real sshd), with its own folder."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.library import Library
from engine.server.client import Client, WorkerDied, worker_argv
from tests.conftest import REAL_CACHE, TEST_DEVICE
from tests.engine.worker_fixtures import train_config, write_sentiment

ENV = {"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def host_command(host_home: Path, workers: int = 1) -> str:
    """The engine command of a host whose copies of libraries live in ``host_home``, running
    ``workers`` workers per library (as a host with that many GPUs does)."""
    return shlex.join(["env", f"PROMPTBANK_REMOTE_HOME={host_home}",
                       f"PROMPTBANK_WORKERS={workers}", sys.executable, "-m", "engine.cli"])


def relay_argv(model_dir: Path, library: Path, engine: list[str]) -> list[str]:
    """``promptbank --engine… worker`` on the tiny model and ``library``."""
    return worker_argv(str(model_dir), library, TEST_DEVICE, extra=engine)


def start_relay(model_dir: Path, library: Path, engine: list[str],
                timeout: float = 180) -> Client:
    """A client of the relay, connected (the host's worker said hello through it)."""
    client = Client(relay_argv(model_dir, library, engine), env=ENV, timeout=timeout)
    client.launch()
    return client


def host_program(folder: Path, host_home: Path) -> Path:
    """A ``promptbank`` program as a host has one installed: this source tree, with the host's
    folders and no network (an ssh session starts with a fresh environment)."""
    program = folder / "promptbank"
    exports = {**ENV, "PROMPTBANK_REMOTE_HOME": str(host_home),
               "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    lines = ["#!/bin/sh", *(f"export {k}={shlex.quote(v)}" for k, v in exports.items()),
             f'exec {shlex.quote(sys.executable)} -m engine.cli "$@"']
    program.write_text("\n".join(lines) + "\n")
    program.chmod(0o755)
    return program


def drop_then_reconnect(model_dir: Path, tmp_path: Path, engine: list[str]) -> None:
    """Start a run through the relay, kill the connection under it mid-run, connect again:
    the run went on on the host and its version and curve come here."""
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    root = tmp_path / "lib"
    client = start_relay(model_dir, root, engine)
    client.call("create_task", task="sent", kind="classify", data=str(data),
                labels=["positive", "negative"])
    train = client.request("train", {"task": "sent",
                                     "config": train_config(150, checkpoint_every=50)})
    next(e for e in train if e.type == "progress" and e.data.get("kind") == "step")
    transport = subprocess.run(["pgrep", "-P", str(client.proc.pid)], capture_output=True,
                               text=True).stdout.split()
    os.kill(int(transport[0]), signal.SIGKILL)  # the connection drops mid-run
    with pytest.raises(WorkerDied):
        for _ in train:
            pass
    client.proc.wait(30)
    assert "connection" in client.death_reason()
    with start_relay(model_dir, root, engine) as again:
        running = again.call("jobs")["jobs"]
        assert [(j["op"], j["state"]) for j in running] == [("train", "running")], running
        assert running[0]["step"] > 1  # the run went on on the host meanwhile
        follow = again.request("watch", {"job": running[0]["job"]})
        first = follow.next_event(60)
        assert first.data["kind"] == "started" and first.data["step"] >= running[0]["step"]
        outcome = follow.result()  # the run's own result, after its version came here
        assert (outcome["status"], outcome["version"]) == ("done", 1)
        again.call("shutdown")
    lib = Library(root, read_only=True)
    assert [v.number for v in lib.list_versions("sent")] == [1]
    run = lib.list_runs("sent")[0]
    assert run.status == "done" and len(lib.run_metrics(run.id)) > 1
    lib.close()


def stop_host_workers(host_home: Path) -> None:
    """End any worker a failed test left running detached on the "host"."""
    subprocess.run(["pkill", "-f", str(host_home)], check=False)
