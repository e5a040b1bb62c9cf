"""``promptbank runs``: a run whose process is gone shows as interrupted with the exact resume
command; ``runs discard`` ends one that will not be resumed, never a live or a done one."""

from __future__ import annotations

import json
import socket

import pytest

from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.owner import RunOwner
from tests.engine.library.test_library_run_owner import gone_pid
from tests.engine.library_helpers import prompt_bytes


@pytest.fixture
def lib(tmp_path) -> Library:
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    done = lib.create_run("t", {})
    version = lib.add_version("t", prompt_bytes(seed=1, task="t"), run_id=done.id)
    lib.finish_run(done.id, "done", version_id=version.id)
    lib.create_run("t", {})  # live: this process trains it
    gone = lib.create_run("t", {})
    lib.release_run(gone.id)
    lib.claim_run(gone.id, RunOwner(gone_pid(), socket.gethostname(), "2026-01-01T00:00:00"))
    lib.checkpoint_dir(gone.id).mkdir(parents=True)
    stopped = lib.create_run("t", {})
    lib.finish_run(stopped.id, "cancelled", summary={"interrupted": "the app was closed"})
    return lib


def _runs(lib, capsys) -> dict[int, dict]:
    assert main(["runs", "--library", str(lib.root), "--json"]) == 0
    return {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}


def test_each_run_says_its_state_and_how_to_resume_it(lib, capsys):
    runs = _runs(lib, capsys)
    assert {i: r["state"] for i, r in runs.items()} == {
        1: "done", 2: "running", 3: "interrupted", 4: "cancelled"}
    assert runs[1]["outcome"] == "saved version 1" and runs[1]["resume"] is None
    assert runs[3]["resumable"] and runs[3]["resume"] == "promptbank train t --resume 3"
    assert "its process is gone" in runs[3]["outcome"]
    assert runs[4]["outcome"].startswith("the app was closed; resume: promptbank train t")
    assert main(["runs", "--library", str(lib.root)]) == 0
    assert "interrupted" in capsys.readouterr().out


def test_discard_ends_an_interrupted_run_and_refuses_live_and_done_ones(lib, capsys):
    assert main(["runs", "discard", "3", "--library", str(lib.root)]) == 0
    assert "Run 3 was discarded" in capsys.readouterr().out
    assert not lib.checkpoint_dir(3).exists()
    run = lib.get_run(3)
    assert run.status == "failed" and run.summary["error"] == "discarded by the user"
    with pytest.raises(PromptbankError, match="is being trained by"):
        lib.discard_run(2)
    with pytest.raises(PromptbankError, match="nothing to discard"):
        lib.discard_run(1)
    assert _runs(lib, capsys)[3]["state"] == "failed"
