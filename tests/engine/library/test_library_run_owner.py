"""Runs carry an owner: one process trains a run; a live owner's run cannot be claimed, a
dead owner's can, and every final status releases it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library import Library, migrations
from engine.library.owner import RunOwner, process_alive, process_token

ROOT = Path(__file__).resolve().parents[3]
# A second process that claims a run, says so, and holds it until its input closes.
HOLDER = textwrap.dedent("""
    import sys
    from engine.library import Library
    Library(sys.argv[1]).claim_run(int(sys.argv[2]))
    print("claimed", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "lib")
    library.create_task("t")
    yield library
    library.close()


def holder(root: Path, run_id: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(run_id)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def gone_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_new_run_is_owned_by_its_creator(lib):
    run = lib.create_run("t", {})
    assert run.owner is not None and run.owner.same_process(RunOwner.this_process())
    assert run.owner.is_alive()


def test_a_second_process_cannot_claim_a_live_run(lib):
    run = lib.create_run("t", {})
    lib.finish_run(run.id, "cancelled")
    proc = holder(lib.root, run.id)
    try:
        with pytest.raises(PromptbankError, match=f"being trained by process {proc.pid} on "
                           f"{socket.gethostname()}") as info:
            lib.claim_run(run.id)
        assert "\n" not in str(info.value)
        assert lib.get_run(run.id).owner.pid == proc.pid  # the refused claim changed nothing
    finally:
        proc.stdin.close()
        proc.wait()
    # Its owner has exited: the claim is stale and taken over.
    taken = lib.claim_run(run.id)
    assert taken.owner.pid == os.getpid()


def test_a_dead_owners_claim_is_taken_over(lib):
    run = lib.create_run("t", {})
    dead = RunOwner(gone_pid(), socket.gethostname(), "2026-01-01T00:00:00+00:00")
    assert not dead.is_alive()
    lib.release_run(run.id)
    lib.claim_run(run.id, dead)
    assert lib.get_run(run.id).owner == dead
    assert lib.claim_run(run.id).owner.same_process(RunOwner.this_process())


def test_a_reused_process_id_is_not_the_owner(lib):
    if process_token(os.getpid()) is None:
        pytest.skip("process start tokens are read from /proc (Linux)")
    # The id is alive (this test's process) but the token says the owner was another process.
    impostor = RunOwner(os.getpid(), socket.gethostname(), "2026-01-01T00:00:00+00:00",
                        "another-boot:1")
    assert process_alive(os.getpid()) and not impostor.is_alive()
    run = lib.create_run("t", {})
    lib.release_run(run.id)
    lib.claim_run(run.id, impostor)
    assert lib.claim_run(run.id).owner.pid == os.getpid()


def test_another_hosts_owner_is_respected(lib):
    run = lib.create_run("t", {})
    remote = RunOwner(gone_pid(), "some-other-host", "2026-01-01T00:00:00+00:00")
    lib.release_run(run.id)
    lib.claim_run(run.id, remote)
    with pytest.raises(PromptbankError, match="on some-other-host"):
        lib.claim_run(run.id)


@pytest.mark.parametrize("status", ["done", "cancelled", "failed"])
def test_every_final_status_releases_the_run(lib, status):
    run = lib.create_run("t", {})
    lib.finish_run(run.id, "running")  # a resume marks it running again: still owned
    assert lib.get_run(run.id).owner is not None
    assert lib.finish_run(run.id, status).owner is None


def test_a_finished_run_cannot_be_claimed(lib):
    run = lib.create_run("t", {})
    lib.finish_run(run.id, "done")
    with pytest.raises(PromptbankError, match="already finished"):
        lib.claim_run(run.id)


def test_release_gives_up_only_ones_own_hold(lib):
    run = lib.create_run("t", {})
    other = RunOwner(1, "some-other-host", "2026-01-01T00:00:00+00:00")
    lib.release_run(run.id, other)
    assert lib.get_run(run.id).owner is not None
    lib.release_run(run.id)
    assert lib.get_run(run.id).owner is None


def test_runs_of_an_older_library_have_no_owner(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    db = Database(root / "library.db")
    migrations.apply(db, stop_before="m003_run_owner")
    db.execute("INSERT INTO tasks (name, kind, created) VALUES ('t', 'generate', 'x')")
    db.execute("INSERT INTO runs (task_id, kind, status, started) VALUES (1, 'train', "
               "'running', 'x')")
    db.conn.commit()
    db.close()
    lib = Library(root)
    (run,) = lib.list_runs()
    assert run.status == "running" and run.owner is None
    assert lib.claim_run(run.id).owner.pid == os.getpid()


def test_a_task_another_process_trains_is_neither_renamed_nor_deleted(lib):
    run = lib.create_run("t", {})
    lib.release_run(run.id)
    proc = holder(lib.root, run.id)
    try:
        for change, word in ((lambda: lib.rename_task("t", "u"), "renamed"),
                             (lambda: lib.delete_task("t"), "deleted")):
            with pytest.raises(PromptbankError, match=f"cannot be {word} while process "
                               f"{proc.pid}"):
                change()
        assert [t.name for t in lib.list_tasks()] == ["t"]
        lib.update_task("t", description="fields may change")  # the trainer keeps going
    finally:
        proc.stdin.close()
        proc.wait()
    lib.rename_task("t", "u")  # its trainer is gone
    lib.delete_task("u")
    assert lib.list_tasks() == []
