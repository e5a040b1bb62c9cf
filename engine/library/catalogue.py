"""The catalogue connection of one library folder: configuration, migrations, transactions
and row queries, shared by every repository of the library.

Every write happens in one ``BEGIN IMMEDIATE`` transaction (so two processes can share a
library); files are written atomically before the commit and removed again if the
transaction fails, so bad input leaves the library as it was.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library.schema import DB_NAME, migrations
from engine.library.store import FileStore
from engine.library.tidy import tidy
from engine.support.crash import crash_point
from engine.support.paths import library_dir

FOLDERS = ("prompts", "datasets", "checkpoints", "exports")
BUSY_TIMEOUT_MS = 15000


class CatalogueMissing(PromptbankError):
    """A library folder without a catalogue yet (and without files a catalogue would name)."""


class CatalogueLost(PromptbankError):
    """A library folder whose prompt or dataset files outlived its catalogue."""


class CatalogueBusy(PromptbankError):
    """A catalogue write another program's lock kept out past the busy timeout (undone; the
    same write may succeed later)."""


#: SQLite's primary result codes (the low byte of an extended code) that name a cause.
_FULL, _READONLY, _BUSY, _LOCKED, _CORRUPT, _NOTADB, _CANTOPEN, _IOERR = (
    13, 8, 5, 6, 11, 26, 14, 10)


def catalogue_error(exc: sqlite3.Error, path: Path) -> PromptbankError:
    """A SQLite failure of one transaction (which SQLite then undid) as its real cause: a
    full disk, a read-only folder, a lock held past the timeout, a damaged file (only when
    SQLite says so) or an unreadable one."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    undone = " Nothing was changed."
    if code == _FULL:
        return PromptbankError(f"The disk holding the library catalogue {path} is full.",
                               hint=f"Free some disk space, then try again.{undone}")
    if code == _READONLY:
        return PromptbankError(f"The library catalogue {path} is read-only here.",
                               hint="Give this user write permission on the library folder "
                               f"to change it; listing and reading need none.{undone}")
    if code in (_BUSY, _LOCKED):
        return CatalogueBusy(
            f"Another program held the library catalogue {path} for more than "
            f"{BUSY_TIMEOUT_MS // 1000} s.",
            hint=f"Wait for it (a training run or another Promptbank) to finish, then try "
            f"again.{undone}")
    if code in (_CORRUPT, _NOTADB):
        return PromptbankError(
            f"The library catalogue {path} is damaged ({exc}).",
            hint="Recreate it from the library's files with `promptbank library rebuild "
            "--force` (the damaged one is kept beside it), or restore it from a backup.")
    return PromptbankError(f"The library catalogue {path} could not be read or written "
                           f"({exc}).", hint="Check the folder's permissions and the disk, "
                           f"then try again.{undone}")


class Catalogue:
    """The SQLite catalogue and file store of one library folder.

    ``read_only`` opens an existing, current catalogue and never creates, migrates or writes
    anything; ``empty`` is an in-memory, read-only catalogue without rows (what a reader shows
    while the library's own cannot be read).
    """

    def __init__(self, root: Path | str | None = None, *, read_only: bool = False,
                 empty: bool = False) -> None:
        self.root = library_dir(root)
        self.read_only = read_only or empty
        self.stand_in = empty
        self.files = FileStore(self.root)
        self._depth = 0
        #: True when the folder itself cannot be written (a read-only disk or no permission):
        #: then the library opens read-only, so it can still be listed and read.
        self.unwritable = not read_only and not empty and self.root.is_dir() \
            and not os.access(self.root, os.W_OK)
        if self.unwritable:
            self.read_only = True
        if empty:
            self.db = Database(memory=True)
            migrations.apply(self.db)
            self.db.execute("PRAGMA query_only = ON")
        elif self.read_only:
            if not (self.root / DB_NAME).is_file():
                self._refuse_missing()
            # Nothing can change a catalogue in a folder nobody may write, and SQLite could
            # not make its shared-memory file there: it is read as an immutable file.
            flags = "mode=ro&immutable=1" if self.unwritable else "mode=ro"
            self._open(self._connect(f"{self.root.as_uri()}/{DB_NAME}?{flags}"),
                       self._check_schema)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            for name in FOLDERS:
                (self.root / name).mkdir(exist_ok=True)
            db_file = self.root / DB_NAME
            if not db_file.exists() or not db_file.stat().st_size:
                self._refuse_lost()  # before anything is written into an empty catalogue
            self._open(self._connect(str(self.root / DB_NAME)), self._migrate)
            tidy(self)

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000,
                                   uri=self.read_only)
        except sqlite3.Error as exc:
            raise catalogue_error(exc, self.root / DB_NAME) from exc
        if self.read_only:
            conn.isolation_level = None  # no implicit transactions: every read sees the latest
        return conn

    def _open(self, conn: sqlite3.Connection, prepare: Callable[[], None]) -> None:
        """Configure and prepare (migrate or check) the catalogue; a lost one is refused."""
        self.db = Database(conn)
        try:
            self._configure()
            prepare()
            if not self._rows("SELECT id FROM tasks LIMIT 1"):
                self._refuse_lost()
        except PromptbankError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise catalogue_error(exc, self.root / DB_NAME) from exc

    def _configure(self) -> None:
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA foreign_keys = ON")
        if self.read_only:
            self.db.execute("PRAGMA query_only = ON")
            return
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")

    def _refuse_lost(self) -> None:
        """Refuse a catalogue without tasks beside prompt or dataset files: it was lost, and a
        new, empty one would silently hide every prompt the library holds."""
        count = len(self.files.content_files())
        if count:
            raise CatalogueLost(
                f"The library in {self.root} has lost its catalogue ({DB_NAME} is missing or "
                f"empty) while prompts/ and datasets/ still hold {count} file(s).",
                hint="Recreate it from those files with `promptbank library rebuild`; nothing "
                "was changed.")

    def _refuse_missing(self) -> None:
        self._refuse_lost()
        raise CatalogueMissing(f"The library in {self.root} has no catalogue yet.",
                               hint="It is created when the library is first changed.")

    def _pending_migrations(self) -> list[str]:
        """The migrations this catalogue lacks; one written by a newer Promptbank is refused."""
        known = [m.name for m in migrations._migrations]
        applied = {m.name for m in migrations.applied(self.db)}
        if applied - set(known):
            raise PromptbankError(
                f"The library in {self.root} was written by a newer Promptbank.",
                hint="Update Promptbank to open it.")
        return [name for name in known if name not in applied]

    def _check_schema(self) -> None:
        pending = self._pending_migrations()
        if len(pending) == len(migrations._migrations):  # an empty file: no catalogue yet
            self._refuse_missing()
        if pending:
            raise PromptbankError(
                f"The library in {self.root} has an older catalogue, which Promptbank updates "
                "the first time it changes the library.",
                hint="Open it once with the engine or a `promptbank` command, then reload.")

    def _migrate(self) -> None:
        if not self._pending_migrations():
            return
        # A migration may copy a table to change a constraint (SQLite's only way); with
        # foreign keys on, dropping the old table would delete the rows that point at it. So
        # they are off while migrating (only possible outside a transaction), and checked
        # before the commit.
        self.db.execute("PRAGMA foreign_keys = OFF")
        try:
            with self.transaction():
                migrations.apply(self.db)
                if self.db.execute("PRAGMA foreign_key_check").fetchall():
                    raise PromptbankError(
                        f"Updating the library catalogue in {self.root} would break links "
                        "between its tables, so it was left as it was.",
                        hint="Check it with `promptbank library check`.")
                self.db.execute(f"PRAGMA user_version = {len(migrations._migrations)}")
        finally:
            self.db.execute("PRAGMA foreign_keys = ON")

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
        if self.unwritable:
            raise PromptbankError(
                f"The library folder {self.root} is read-only here (a read-only disk, or this "
                "user may not write to it): it can be listed and read, not changed.",
                hint="Give this user write permission on the folder, or copy the library to a "
                "writable place and use --library there.")
        if self.read_only:
            raise PromptbankError(
                f"The library in {self.root} was opened read-only, so it cannot be changed here.",
                hint="Change it through the engine (as the desktop does) or a `promptbank` "
                "command.")
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
                    crash_point()
                    conn.execute("COMMIT")
                    crash_point()
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
            # A failed COMMIT undoes the transaction; a failure after it cannot happen here.
            raise catalogue_error(exc, self.root / DB_NAME) from exc

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
