"""The catalogue's fourth migration: universal tasks and joint runs, on a library written
before it (rows, links and cascades kept)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library import Library
from engine.library.schema import DB_NAME, migrations


def _old_library(root):
    """A catalogue at schema 3 with a task, a version (active) and a run."""
    root.mkdir(parents=True)
    db = Database(sqlite3.connect(str(root / DB_NAME)))
    db.execute("PRAGMA foreign_keys = ON")
    migrations.apply(db, stop_before="m004_universal_and_joint_runs")
    db.execute("INSERT INTO tasks (id, name, kind, created) VALUES (1, 'a', 'classify', 't')")
    db.execute("INSERT INTO prompts (id, task_id, number, method, length, fingerprint, "
               "hidden_size, path, sha256, created) VALUES (1, 1, 1, 'prompt', 2, 'f', 2, "
               "'prompts/t1-v1.safetensors', 's', 't')")
    db.execute("UPDATE tasks SET active_version_id = 1")
    db.execute("INSERT INTO runs (id, task_id, kind, status, started) "
               "VALUES (1, 1, 'train', 'done', 't')")
    db.conn.commit()
    db.close()


def test_migration_keeps_rows_links_and_cascades(tmp_path):
    _old_library(tmp_path / "lib")
    lib = Library(tmp_path / "lib")
    assert lib.schema_version == len(migrations._migrations)
    task = lib.get_task("a")
    assert task.kind == "classify" and task.active_version_id == 1
    assert lib.get_version("a").number == 1 and lib.get_run(1).joint_id is None
    assert lib.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    lib.create_universal_task("u", description="d", instruction="i")
    assert lib.get_task("u").kind == "universal"
    lib.delete_task("a")  # the cascade to the task's versions and runs still works
    assert lib.db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0] == 0
    assert lib.list_runs() == []


def test_universal_kind_only_through_its_own_command(tmp_path):
    lib = Library(tmp_path / "lib")
    with pytest.raises(PromptbankError, match="Unknown task kind"):
        lib.create_task("x", kind="universal")
    lib.create_task("g", kind="generate")
    lib.create_universal_task("u", description="d", instruction="i")
    with pytest.raises(PromptbankError, match="to or from universal"):
        lib.update_task("g", kind="universal")
    with pytest.raises(PromptbankError, match="to or from universal"):
        lib.update_task("u", kind="generate")
    assert lib.update_task("u", description="new").description == "new"


def test_joint_runs_share_the_first_runs_id(tmp_path):
    lib = Library(tmp_path / "lib")
    for name in ("a", "b", "c"):
        lib.create_task(name, kind="generate")
    runs = lib.create_joint_runs([("a", {}), ("b", {}), ("c", {})])
    assert [r.joint_id for r in runs] == [runs[0].id] * 3
    assert [r.id for r in lib.joint_runs(runs[0].id)] == [r.id for r in runs]
    assert lib.create_run("a", {}).joint_id is None
    with pytest.raises(PromptbankError):
        lib.create_joint_runs([("a", {}), ("nope", {})])
    assert len(lib.list_runs()) == 4  # the failed joint job left no run behind
