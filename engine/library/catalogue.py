"""The catalogue connection of one library folder: configuration, migrations, transactions
and row queries, shared by every repository of the library.

Every write happens in one ``BEGIN IMMEDIATE`` transaction (so two processes can share a
library); files are written atomically before the commit and removed again if the
transaction fails, so bad input leaves the library as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library.schema import DB_NAME, migrations
from engine.library.store import FileStore
from engine.paths import library_dir

FOLDERS = ("prompts", "datasets", "checkpoints", "exports")
BUSY_TIMEOUT_MS = 15000


class Catalogue:
    """The SQLite catalogue and file store of one library folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = library_dir(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.files = FileStore(self.root)
        self._depth = 0
        for name in FOLDERS:
            (self.root / name).mkdir(exist_ok=True)
        try:
            conn = sqlite3.connect(str(self.root / DB_NAME), timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise PromptbankError(f"The library catalogue in {self.root} cannot be opened "
                                  f"({exc}).", hint="Check the folder's permissions.") from exc
        self.db = Database(conn)
        try:
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise PromptbankError(f"The library catalogue {self.root / DB_NAME} is damaged "
                                  f"({exc}).", hint="Restore it from a backup.") from exc

    def _configure(self) -> None:
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        known = {m.name for m in migrations._migrations}
        applied = {m.name for m in migrations.applied(self.db)}
        if applied - known:
            raise PromptbankError(
                f"The library in {self.root} was written by a newer Promptbank.",
                hint="Update Promptbank to open it.")
        if applied == known:
            return
        with self.transaction():
            migrations.apply(self.db)
            self.db.execute(f"PRAGMA user_version = {len(known)}")

    @property
    def schema_version(self) -> int:
        """How many schema migrations this library has had."""
        return len(migrations.applied(self.db))

    def close(self) -> None:
        """Close the catalogue connection."""
        self.db.close()

    def checkpoint_dir(self, run_id: int) -> Path:
        """The folder for a run's checkpoints (not created here)."""
        return self.root / "checkpoints" / f"run-{run_id}"

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (for backups and comparisons)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All catalogue writes inside are one transaction; files written for it are removed
        again if it fails. Nested use is a savepoint, so an inner failure undoes only itself."""
        conn = self.db.conn
        first_file = self.files.mark()
        try:
            if self._depth:
                savepoint = f"pb_{self._depth}"
                conn.execute(f"SAVEPOINT {savepoint}")
            else:
                conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.db
                if self._depth == 1:
                    conn.execute("COMMIT")
                else:
                    conn.execute(f"RELEASE {savepoint}")
            except BaseException:
                if self._depth == 1 and conn.in_transaction:
                    conn.execute("ROLLBACK")
                elif self._depth > 1:
                    conn.execute(f"ROLLBACK TO {savepoint}")
                    conn.execute(f"RELEASE {savepoint}")
                self.files.discard(first_file)
                raise
            finally:
                self._depth -= 1
                if not self._depth:
                    self.files.settle()
        except sqlite3.OperationalError as exc:
            raise PromptbankError(f"The library catalogue could not be written ({exc}).",
                                  hint="Free some disk space or close other programs using "
                                  "the library, then try again; nothing was changed.") from exc

    def _write_file(self, rel: str, data: bytes) -> str:
        if not self._depth:
            raise RuntimeError("library files are written inside a transaction")
        return self.files.write(rel, data)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        cursor = self.db.execute(sql, params)
        cols = [c[0] for c in cursor.description]
        return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]

    def _row(self, sql: str, params: tuple, missing: str, hint: str = "") -> dict:
        rows = self._rows(sql, params)
        if not rows:
            raise PromptbankError(missing, hint=hint)
        return rows[0]
