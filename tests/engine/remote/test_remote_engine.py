"""The remote engine through ``--engine-command``: the library here stays the truth, files
travel by content, results come back bitwise, and a dropped connection loses nothing."""

from __future__ import annotations

import getpass
import subprocess
import time

import pytest
import safetensors.torch

from engine.library import Library
from engine.library.headers import read_header_metadata
from engine.server.client import WorkerDied
from tests.engine.remote.helpers import (
    drop_then_reconnect,
    host_command,
    host_program,
    start_relay,
    stop_host_workers,
)
from tests.engine.worker_fixtures import start_worker, train_config, write_sentiment


@pytest.fixture
def host_home(tmp_path):
    yield tmp_path / "host"
    stop_host_workers(tmp_path / "host")


@pytest.fixture
def engine(host_home):
    return ["--engine-command", host_command(host_home)]


def _create_and_train(client, data, steps: int = 4) -> dict:
    client.call("create_task", task="sent", kind="classify", data=str(data),
                labels=["positive", "negative"])
    return client.call("train", task="sent", config=train_config(steps, seed=3))


def _prompt_file(root) -> tuple[str, bytes]:
    lib = Library(root, read_only=True)
    try:
        version = lib.get_version("sent", None)
        return version.path, lib.read_version_bytes(version)
    finally:
        lib.close()


def _tensors_and_header(data: bytes) -> tuple[dict, dict]:
    header = read_header_metadata(data)
    header.pop("created")  # the one field two runs never share
    return safetensors.torch.load(data), header


def test_a_prompt_trained_remotely_is_bitwise_the_local_one(tiny_model_dir, tmp_path, engine,
                                                            host_home):
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    with start_relay(tiny_model_dir, tmp_path / "remote-lib", engine) as client:
        remote = _create_and_train(client, data)
        client.call("shutdown")
        assert client.proc.wait(30) == 0  # the host's worker ended as asked, and the relay
    with start_worker(tiny_model_dir, tmp_path / "local-lib") as client:
        local = _create_and_train(client, data)
    assert remote["version"] == local["version"] == 1
    rel, remote_file = _prompt_file(tmp_path / "remote-lib")
    host_copy = next(host_home.glob(f"*/library/{rel}")).read_bytes()
    assert remote_file == host_copy  # the file the host wrote, byte for byte
    remote_tensors, remote_header = _tensors_and_header(remote_file)
    local_tensors, local_header = _tensors_and_header(_prompt_file(tmp_path / "local-lib")[1])
    assert remote_header == local_header
    assert remote_tensors.keys() == local_tensors.keys()
    for key, tensor in remote_tensors.items():  # the same seed and device: the same bits
        assert tensor.numpy().tobytes() == local_tensors[key].numpy().tobytes()
    lib = Library(tmp_path / "remote-lib", read_only=True)
    run = lib.list_runs("sent")[0]
    assert run.status == "done" and lib.run_metrics(run.id)  # the curve came back too
    lib.close()


@pytest.fixture
def dropping_engine(request, tmp_path, host_home, monkeypatch):
    """ssh through a real sshd where one can run (the nearest to a network that drops),
    else the engine command."""
    try:
        sshd = request.getfixturevalue("sshd")
    except pytest.skip.Exception:
        return ["--engine-command", host_command(host_home)]
    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    return ["--engine", f"ssh://{sshd.alias}{host_program(tmp_path, host_home)}"]


def test_a_dropped_connection_loses_nothing(tiny_model_dir, tmp_path, dropping_engine):
    drop_then_reconnect(tiny_model_dir, tmp_path, dropping_engine)  # a training over ssh too


def test_a_host_without_promptbank_is_named(tiny_model_dir, tmp_path):
    engine = ["--engine-command",
              "sh -c 'echo \"sh: 1: promptbank: not found\" >&2; exit 127' --"]
    with pytest.raises(WorkerDied, match="not installed"):
        start_relay(tiny_model_dir, tmp_path / "lib", engine, timeout=60)


def test_two_desktops_see_each_others_jobs(tiny_model_dir, tmp_path, engine):
    """Two clients of one library on one host at once: the second sees the first's run and
    follows it to its end; each hears its own requests; the run is written once."""
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    root = tmp_path / "lib"
    with start_relay(tiny_model_dir, root, engine) as first:
        first.call("create_task", task="sent", kind="classify", data=str(data),
                   labels=["positive", "negative"])
        train = first.request("train", {"task": "sent", "config": train_config(30)})
        next(e for e in train if e.type == "progress" and e.data.get("kind") == "step")
        with start_relay(tiny_model_dir, root, engine) as second:
            listing = second.call("jobs")["jobs"]
            assert [(j["op"], j["task"], j["state"]) for j in listing] == [
                ("train", "sent", "running")]
            follow = second.request("watch", {"job": listing[0]["job"]})
            assert follow.next_event(60).data["kind"] == "started"
            assert second.call("ping") == {"pong": True}  # its own requests still answered
            mine, theirs = train.result(), follow.result()
            assert mine["run_id"] == theirs["run_id"] and mine["version"] == theirs["version"] == 1
            assert first.call("jobs")["jobs"] == []
            second.call("shutdown")
    lib = Library(root, read_only=True)
    assert [v.number for v in lib.list_versions("sent")] == [1]
    assert [r.status for r in lib.list_runs("sent")] == ["done"]
    lib.close()


def test_another_librarys_jobs_show_on_the_device_they_share(tiny_model_dir, tmp_path,
                                                             engine):
    """Two users' libraries on one host: each sees the other's run on the device they share
    (posted on the host's board), never in its own jobs."""
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    with start_relay(tiny_model_dir, tmp_path / "alice", engine) as alice, \
            start_relay(tiny_model_dir, tmp_path / "bob", engine) as bob:
        alice.call("create_task", task="sent", kind="classify", data=str(data),
                   labels=["positive", "negative"])
        train = alice.request("train", {"task": "sent", "config": train_config(400)})
        next(e for e in train if e.type == "progress" and e.data.get("kind") == "step")
        deadline = time.monotonic() + 30
        while True:  # the board is renewed every few seconds
            [device] = bob.call("devices")["devices"]
            if [j["state"] for j in device["jobs"]] == ["running"]:
                break
            assert time.monotonic() < deadline, device
            time.sleep(0.5)
        [job] = device["jobs"]
        assert (job["task"], job["state"], job["user"]) == ("sent", "running",
                                                            getpass.getuser())
        assert job["library"] and device["engine_bytes"] > 0 and device["worker"] == 0
        assert bob.call("jobs")["jobs"] == []  # not bob's to follow or cancel
        [own] = alice.call("devices")["devices"]
        assert [(j["task"], j["library"]) for j in own["jobs"]] == [("sent", "")]
        alice.call("cancel", job=train.id)
        assert train.result()["status"] == "cancelled"
        for client in (alice, bob):
            client.call("shutdown")


def test_jobs_spread_over_the_hosts_workers(tiny_model_dir, tmp_path, host_home):
    engine = ["--engine-command", host_command(host_home, workers=2)]
    data = write_sentiment(tmp_path / "sentiment.jsonl")
    with start_relay(tiny_model_dir, tmp_path / "lib", engine) as client:
        for task in ("one", "two"):
            client.call("create_task", task=task, kind="classify", data=str(data),
                        labels=["positive", "negative"])
        runs = [client.request("train", {"task": task, "config": train_config(15)})
                for task in ("one", "two")]
        for run in runs:  # both started: neither waits behind the other
            next(e for e in run if e.type == "progress" and e.data.get("kind") == "started")
        listing = client.call("jobs")["jobs"]
        assert sorted((j["task"], j["state"]) for j in listing) == [("one", "running"),
                                                                    ("two", "running")]
        assert sorted(j["worker"] for j in listing) == [0, 1]
        assert [run.result()["version"] for run in runs] == [1, 1]
        client.call("shutdown")  # every worker ends
        assert client.proc.wait(30) == 0
    lib = Library(tmp_path / "lib", read_only=True)
    assert {t.name: len(lib.list_versions(t.name)) for t in lib.list_tasks()} == {"one": 1,
                                                                                 "two": 1}
    lib.close()
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", f"{host_home}/"]).returncode == 0:
        assert time.monotonic() < deadline, "a worker outlived the shutdown"
        time.sleep(0.2)
