"""SQLite failures named by their real cause, each produced for real: a full database, a
write lock held past the timeout, a damaged file."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import PromptbankError
from engine.library import Library
from engine.library import catalogue as catalogue_module
from tests.engine.library_helpers import prompt_bytes


def test_a_full_disk_says_full_not_damaged(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    pages = lib.db.execute("PRAGMA page_count").fetchone()[0]
    lib.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL
    with pytest.raises(PromptbankError) as err:
        for i in range(200):
            lib.create_task(f"task {i} " + "x" * 500)
    assert "is full" in str(err.value) and "Free some disk space" in str(err.value)
    assert "damaged" not in str(err.value)
    assert "t" in {t.name for t in Library(tmp_path / "lib").list_tasks()}


def test_a_lock_held_past_the_timeout_names_the_lock(tmp_path, monkeypatch):
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    lib.close()
    holder = sqlite3.connect(str(tmp_path / "lib" / "library.db"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        monkeypatch.setattr(catalogue_module, "BUSY_TIMEOUT_MS", 200)
        with pytest.raises(PromptbankError) as err:
            Library(tmp_path / "lib").add_version("t", prompt_bytes(seed=1, task="t"))
    finally:
        holder.rollback()
        holder.close()
    text = str(err.value)
    assert "held the library catalogue" in text and "Wait for it" in text
    assert "disk space" not in text and "damaged" not in text


def test_a_damaged_file_names_the_rebuild(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    lib.close()
    (tmp_path / "lib" / "library.db").write_bytes(b"this is not a database at all" * 100)
    for name in ("library.db-wal", "library.db-shm"):
        (tmp_path / "lib" / name).unlink(missing_ok=True)
    with pytest.raises(PromptbankError) as err:
        Library(tmp_path / "lib").list_tasks()
    assert "is damaged" in str(err.value) and "library rebuild --force" in str(err.value)
