"""A library copied between machines: the catalogue whole, the files by content.

A remote engine (``engine.remote``) keeps a copy of the user's library on the GPU host. The
catalogue travels whole through SQLite's backup API, so a reader on either side sees the old
catalogue or the new one, never half of each; files travel by path and sha256.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import PromptbankError
from engine.library.schema import DB_NAME
from engine.support.fileio import sha256_file

#: The folders whose files a copy of the library holds (exports stay where they were made).
SYNCED_FOLDERS = ("prompts", "datasets", "checkpoints")


@dataclass(frozen=True)
class Snapshot:
    """The catalogue at one moment: one consistent SQLite file's bytes and its digest."""

    data: bytes
    digest: str


def catalogue_snapshot(root: Path) -> Snapshot:
    """The catalogue as one SQLite file, with the digest of that very copy (empty when there
    is no catalogue yet), taken while a worker may be writing."""
    db = Path(root) / DB_NAME
    if not db.is_file():
        return Snapshot(b"", "")
    fd, tmp = tempfile.mkstemp(prefix=".replica.", suffix=".db", dir=root)
    os.close(fd)
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)
            digest = _dump_digest(dst)
        return Snapshot(Path(tmp).read_bytes(), digest)
    finally:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            Path(leftover).unlink(missing_ok=True)


def catalogue_digest(root: Path) -> str:
    """A sha256 of the catalogue's content (its SQL dump), "" when there is none: equal for
    two copies that hold the same rows, however their pages lie."""
    db = Path(root) / DB_NAME
    if not db.is_file():
        return ""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return _dump_digest(conn)


def _dump_digest(conn: sqlite3.Connection) -> str:
    digest = hashlib.sha256()
    for line in conn.iterdump():
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def install_catalogue(root: Path, data: bytes, digest: str | None = None) -> None:
    """Replace the catalogue of ``root`` with ``data`` (from :func:`catalogue_bytes`) in one
    step; a file that is no sound Promptbank catalogue, or whose content does not have the
    ``digest`` its sender named, is refused and nothing changes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".replica.", suffix=".db", dir=root)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with closing(sqlite3.connect(tmp)) as src:
            _check_catalogue(src)
            if digest is not None and _dump_digest(src) != digest:
                raise PromptbankError(f"The catalogue received for {root} changed in transit; "
                                      "it was refused and nothing was changed.",
                                      hint="Connect again; the copy is sent anew.")
            with closing(sqlite3.connect(root / DB_NAME)) as dst:
                dst.execute("PRAGMA busy_timeout = 10000")
                src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise PromptbankError(f"The catalogue received for {root} is not a readable SQLite "
                              f"file ({exc}); nothing was changed.",
                              hint="Connect again; the copy is sent anew.") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_catalogue(conn: sqlite3.Connection) -> None:
    ok = conn.execute("PRAGMA integrity_check").fetchone()
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if ok != ("ok",) or not {"tasks", "prompts", "runs"} <= tables:
        raise PromptbankError("The catalogue received is damaged or is no Promptbank "
                              "catalogue; nothing was changed.",
                              hint="Connect again; the copy is sent anew.")


def synced_path(rel: str, folders: tuple[str, ...] = SYNCED_FOLDERS) -> str:
    """``rel`` if it is a plain relative path inside one of ``folders``; else refused, so a
    name sent over the wire can never reach outside the library."""
    path = PurePosixPath(rel)
    if (path.is_absolute() or not path.parts or path.parts[0] not in folders
            or any(part in ("", ".", "..") for part in path.parts) or "\\" in rel
            or len(path.parts) < 2):
        raise PromptbankError(f"'{rel}' is not a file of a library's "
                              f"{', '.join(folders)} folders; it was refused.")
    return str(path)


class FileHashes:
    """The synced files of one library folder with their sha256, each hashed again only when
    its size or modification time changed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._seen: dict[str, tuple[int, int, str]] = {}

    def listing(self, folders: tuple[str, ...] = SYNCED_FOLDERS) -> dict[str, str]:
        """Relative path → sha256 of every file under ``folders`` (temp files left out)."""
        found: dict[str, str] = {}
        for folder in folders:
            base = self.root / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    rel = path.relative_to(self.root).as_posix()
                    found[rel] = self.sha256(rel)
        return found

    def sha256(self, rel: str) -> str:
        """The sha256 of one file (from the cache while it is unchanged)."""
        stat = (self.root / rel).stat()
        cached = self._seen.get(rel)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = sha256_file(self.root / rel)
        self._seen[rel] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest
