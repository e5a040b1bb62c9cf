"""What crosses the connection is checked: a file changed in transit is refused either way,
a catalogue that does not match its digest is refused, names cannot leave the library, and a
library changed on both sides is refused until one side is chosen."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from engine.api.engine_target import EngineTarget
from engine.api.wire import Request, decode_event
from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.replica import catalogue_snapshot, install_catalogue, synced_path
from engine.remote.host import HostAgent
from engine.remote.protocol import encode_bytes
from engine.remote.relay import COLLECT_TRIES, FileChanged, Relay
from tests.engine.remote.helpers import host_command


def _agent_answers(tmp_path, monkeypatch, *requests: Request) -> list:
    monkeypatch.setenv("PROMPTBANK_REMOTE_HOME", str(tmp_path / "host"))
    out = io.BytesIO()
    agent = HostAgent("library-0001", [], out)
    agent.serve(io.BytesIO(b"".join(r.encode().encode() for r in requests)))
    return [decode_event(line) for line in out.getvalue().splitlines()]


def test_a_file_changed_on_its_way_to_the_host_is_refused(tmp_path, monkeypatch):
    data = b"a prompt file"
    put = Request("p1", "remote.put", {"rel": "prompts/t1-v1-abc.safetensors",
                                       "sha256": hashlib.sha256(data).hexdigest(),
                                       "size": len(data), "offset": 0,
                                       "data": encode_bytes(b"a prompt fil3")})
    greeting, answer = _agent_answers(tmp_path, monkeypatch, put)
    assert greeting.data["worker"] is False
    assert answer.type == "error" and "changed in transit" in answer.message
    assert not list((tmp_path / "host").rglob("*.safetensors"))


def test_names_outside_the_library_are_refused(tmp_path, monkeypatch):
    escape = Request("p1", "remote.put", {"rel": "prompts/../../evil", "sha256": "0",
                                          "size": 1, "offset": 0, "data": encode_bytes(b"x")})
    outside = Request("p2", "remote.get", {"rel": "/etc/passwd"})
    answers = _agent_answers(tmp_path, monkeypatch, escape, outside)[1:]
    assert [a.type for a in answers] == ["error", "error"]
    assert all("refused" in a.message for a in answers)
    with pytest.raises(PromptbankError):
        synced_path("datasets")


def test_a_file_changed_on_its_way_back_is_refused(tmp_path):
    relay = Relay(EngineTarget.parse(command=host_command(tmp_path / "host")),
                  tmp_path / "lib", [])
    greeting = relay.open()
    host_file = tmp_path / "host" / relay.state.id / "library" / "prompts" / "t1-v1-x.st"
    host_file.parent.mkdir(parents=True)
    host_file.write_bytes(b"what the host wrote")
    listed = hashlib.sha256(b"what the host wrote").hexdigest()
    host_file.write_bytes(b"what the host wrote, then changed")
    with pytest.raises(PromptbankError, match="changed in transit"):
        relay.fetch("prompts/t1-v1-x.st", listed)
    assert greeting.mirror.endswith(relay.state.id)
    relay.upstream.close()


def test_a_catalogue_that_does_not_match_its_digest_is_refused(tmp_path):
    Library(tmp_path / "a").create_task("kept")
    Library(tmp_path / "b").create_task("other")
    wrong = catalogue_snapshot(tmp_path / "b")
    with pytest.raises(PromptbankError, match="changed in transit"):
        install_catalogue(tmp_path / "a", wrong.data, digest="0" * 64)
    assert [t.name for t in Library(tmp_path / "a").list_tasks()] == ["kept"]
    with pytest.raises(PromptbankError, match=r"not a readable SQLite|damaged"):
        install_catalogue(tmp_path / "a", b"not a database at all" * 100)
    assert [t.name for t in Library(tmp_path / "a").list_tasks()] == ["kept"]


def test_a_library_changed_on_both_sides_is_refused_until_one_is_chosen(tmp_path, capsys):
    command = host_command(tmp_path / "host")
    root = tmp_path / "lib"
    Library(root).create_task("first")
    relay = Relay(EngineTarget.parse(command=command), root, [])
    relay.sync(relay.open())  # the host copy is now this library
    relay.upstream.close()
    Library(root).create_task("made here")
    Library(tmp_path / "host" / relay.state.id / "library").create_task("made there")
    again = Relay(EngineTarget.parse(command=command), root, [])
    with pytest.raises(PromptbankError, match="that copy changed too"):
        again.sync(again.open())
    again.upstream.close()
    assert {t.name for t in Library(root).list_tasks()} == {"first", "made here"}
    base = ["--library", str(root), "--engine-command", command, "--json"]
    assert main([*base, "remote", "forget"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"].endswith(relay.state.id)
    last = Relay(EngineTarget.parse(command=command), root, [])
    last.sync(last.open())  # with the host's copy gone, this library is sent again
    last.upstream.close()
    assert main([*base, "remote", "check"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["copy_state"] == "up to date" and found["worker"] == "not running"
    host_lib = Library(tmp_path / "host" / relay.state.id / "library", read_only=True)
    assert {t.name for t in host_lib.list_tasks()} == {"first", "made here"}


def test_commands_that_compute_here_refuse_a_remote_engine(capsys):
    assert main(["--engine", "ssh://gpu-box", "library", "check"]) != 0
    assert "computes on this machine" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["http://gpu-box", "ssh://", "ssh://box:port",
                                     "ssh://me:secret@box", "ssh://box?x=1"])
def test_addresses_that_are_not_ssh_are_refused(address):
    with pytest.raises(PromptbankError, match="not an engine address"):
        EngineTarget.parse(address)


def test_an_ssh_address_runs_promptbank_there_quoted(monkeypatch):
    monkeypatch.delenv("PROMPTBANK_SSH", raising=False)
    target = EngineTarget.parse("ssh://me@gpu-box:2222/opt/my tools/promptbank")
    argv = target.command(["remote-host", "--model", "a b"])
    assert argv[0] == "ssh" and "BatchMode=yes" in argv
    assert argv[argv.index("-p") + 1] == "2222" and "me@gpu-box" in argv
    assert argv[-1] == "'/opt/my tools/promptbank' remote-host --model 'a b'"
    assert EngineTarget.parse("local") is None and EngineTarget.parse() is None


def test_a_checkpoint_replaced_while_it_is_read_is_read_again(tmp_path, monkeypatch):
    relay = Relay(EngineTarget.parse(command=host_command(tmp_path / "host")),
                  tmp_path / "lib", [])
    relay.open()
    tries = []

    def replaced_once() -> None:
        tries.append(1)
        if len(tries) == 1:  # a running job renamed a new checkpoint over the one listed
            raise FileChanged("The file checkpoints/run-1/x changed in transit.")

    monkeypatch.setattr(relay, "_collect", replaced_once)
    relay.collect()
    assert len(tries) == 2
    host_file = tmp_path / "host" / relay.state.id / "library" / "prompts" / "t1-v1-x.st"
    host_file.parent.mkdir(parents=True)
    host_file.write_bytes(b"not what was listed")
    tries.clear()
    monkeypatch.setattr(relay, "_collect", lambda: (tries.append(1), relay.fetch(
        "prompts/t1-v1-x.st", "0" * 64)))
    with pytest.raises(FileChanged):  # a file that never matches is refused in the end
        relay.collect()
    assert len(tries) == COLLECT_TRIES
    relay.upstream.close()
