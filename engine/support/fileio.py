"""Atomic, checksummed file writes (temp file in the same folder, fsync, rename, fsync dir)
and checksummed reads."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from engine.errors import PromptbankError
from engine.support.crash import crash_point

#: What the temporary files of ``atomic_write_bytes`` are called (".NAME.RANDOM.tmp").
TEMPORARY_GLOB = ".*.tmp"


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_verified(path: Path, sha256: str | None, *, what: str) -> bytes:
    """A file's bytes, refused with one clear sentence when it is missing or, given the
    ``sha256`` it was saved with, changed or truncated since; ``what`` names the file's role."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PromptbankError(f"{what} {path} is missing.",
                              hint="Restore the library folder from a backup.") from exc
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise PromptbankError(
            f"{what} {path} does not match its checksum: it was changed or truncated after it "
            "was saved.", hint="Restore it from a backup, or retrain it if it is a prompt.")
    return data


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one; return sha256.

    A failure (disk full, kill) leaves no partial ``path``; the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            crash_point()
            os.fsync(fh.fileno())
        crash_point()
        os.replace(tmp, path)
        crash_point()
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise PromptbankError(
            f"Could not write {path}: {exc.strerror or exc}.",
            hint="Free some disk space or choose another folder; nothing was changed.",
        ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    crash_point()
    return sha256_bytes(data)


def temporary_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The temporary files unfinished ``atomic_write_bytes`` calls left in ``folder`` (and,
    ``recursive``, below it), sorted."""
    if not folder.is_dir():
        return []
    found = folder.rglob(TEMPORARY_GLOB) if recursive else folder.glob(TEMPORARY_GLOB)
    return sorted(p for p in found if p.is_file())
