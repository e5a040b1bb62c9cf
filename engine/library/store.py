"""The library's file store: files written atomically for a catalogue transaction (removed
again when that transaction fails) and read back checked against their checksum."""

from __future__ import annotations

import re
from pathlib import Path

from engine.support.fileio import atomic_write_bytes, read_verified

CONTENT_FOLDERS = ("prompts", "datasets")
# Files are named by task id and checksum, so a rename moves nothing and a lost catalogue can
# be rebuilt from the names (see engine.library.rebuild).
PROMPT_FILE = re.compile(r"prompts/t(?P<task>\d+)-v(?P<number>\d+)-(?P<sha>[0-9a-f]{12})"
                         r"\.safetensors")
DATASET_FILE = re.compile(r"datasets/t(?P<task>\d+)-(?P<sha>[0-9a-f]{16})-(?P<eval>eval-)?"
                          r"(?P<name>.+)")


def prompt_file(task_id: int, number: int, sha256: str) -> str:
    """The library path of a task's prompt version file."""
    return f"prompts/t{task_id}-v{number}-{sha256[:12]}.safetensors"


def dataset_file(task_id: int, sha256: str, name: str, *, eval_file: bool = False) -> str:
    """The library path of a dataset snapshot (``name``: the original file's name)."""
    return f"datasets/t{task_id}-{sha256[:16]}-{'eval-' if eval_file else ''}{_safe_name(name)}"


def _safe_name(name: str) -> str:
    """A file name reduced to safe characters (the snapshot keeps the original's extension)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-80:]
    return cleaned.lstrip(".") or "data"


class FileStore:
    """Files under one library folder, named by paths relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._written: list[Path] = []

    def path(self, rel: str) -> Path:
        """The absolute path of a library file."""
        return self.root / rel

    def content_files(self) -> list[str]:
        """The prompt files and dataset snapshots present (relative paths; temp files left
        out), whether or not the catalogue names them."""
        return sorted(f"{folder}/{p.name}" for folder in CONTENT_FOLDERS
                      if (self.root / folder).is_dir()
                      for p in (self.root / folder).iterdir()
                      if p.is_file() and not p.name.startswith("."))

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
