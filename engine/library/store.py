"""The library's file store: files written atomically for a catalogue transaction (removed
again when that transaction fails) and read back checked against their checksum."""

from __future__ import annotations

from pathlib import Path

from engine.fileio import atomic_write_bytes, read_verified


class FileStore:
    """Files under one library folder, named by paths relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._written: list[Path] = []

    def path(self, rel: str) -> Path:
        """The absolute path of a library file."""
        return self.root / rel

    def write(self, rel: str, data: bytes) -> str:
        """Write a file atomically, remember it until its transaction ends; return sha256."""
        path = self.path(rel)
        digest = atomic_write_bytes(path, data)
        self._written.append(path)
        return digest

    def read(self, rel: str, sha256: str, what: str) -> bytes:
        """A library file's bytes, checked against the sha256 the catalogue keeps for it."""
        return read_verified(self.path(rel), sha256, what=what)

    def mark(self) -> int:
        """A position to ``discard`` back to if the transaction starting now fails."""
        return len(self._written)

    def discard(self, mark: int) -> None:
        """Remove the files written since ``mark`` (their transaction failed)."""
        for path in self._written[mark:]:
            path.unlink(missing_ok=True)
        del self._written[mark:]

    def settle(self) -> None:
        """The outermost transaction ended: the files written so far stay as they are."""
        self._written.clear()
