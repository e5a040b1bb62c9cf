"""A library opened read-only (as the desktop opens it) never creates, migrates or writes."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library import Library, migrations
from tests.engine.library_helpers import prompt_bytes, snapshot


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "lib"
    lib = Library(root)
    lib.create_task("t")
    lib.add_version("t", prompt_bytes())
    lib.checkpoint()
    lib.close()
    return root


def test_reads_work_and_every_write_is_refused(root):
    writer = Library(root)
    before = snapshot(writer)
    reader = Library(root, read_only=True)
    assert [t.name for t in reader.list_tasks()] == ["t"]
    version = reader.get_version("t")
    assert reader.read_version_bytes(version) == writer.read_version_bytes(version)
    attempts = [lambda: reader.create_task("u"), lambda: reader.rename_task("t", "u"),
                lambda: reader.delete_task("t"), lambda: reader.set_active("t", 1),
                lambda: reader.add_version("t", prompt_bytes(seed=1)),
                lambda: reader.create_run("t", {})]
    for attempt in attempts:
        with pytest.raises(PromptbankError, match="opened read-only") as info:
            attempt()
        assert "\n" not in str(info.value)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("INSERT INTO tasks (name, kind, created) VALUES ('x', 'generate', 'x')")
    assert snapshot(writer) == before


def test_it_sees_what_another_process_writes_after_it_opened(root):
    reader = Library(root, read_only=True)
    Library(root).create_task("later")
    assert [t.name for t in reader.list_tasks()] == ["later", "t"]


def test_an_older_catalogue_is_not_migrated(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    db = Database(root / "library.db")
    migrations.apply(db, stop_before="m003_run_owner")
    db.execute("INSERT INTO tasks (name, kind, created) VALUES ('kept', 'generate', 'x')")
    db.conn.commit()
    db.close()
    before = digest(root / "library.db")
    with pytest.raises(PromptbankError, match="older catalogue"):
        Library(root, read_only=True)
    assert digest(root / "library.db") == before
    assert Library(root).schema_version == len(migrations._migrations)  # a writer migrates it


def test_an_empty_stand_in_holds_nothing_and_touches_no_file(tmp_path):
    stand_in = Library(tmp_path / "nowhere", empty=True)
    assert stand_in.list_tasks() == [] and stand_in.list_runs() == []
    with pytest.raises(PromptbankError, match="opened read-only"):
        stand_in.create_task("x")
    assert not (tmp_path / "nowhere").exists()
