"""On opening a library for writing: put aside what a killed write left behind, and say so.

A prompt or dataset file is written and renamed inside its catalogue transaction, so a file
that no row names while this process holds the write lock belongs to a transaction that never
committed. It is moved to ``recovered/`` (never deleted: it may hold a prompt someone wants),
and the temporary files of such writes are removed, as are those of checkpoint saves of runs
that no live process trains.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from engine.library.owner import RunOwner
from engine.library.store import CONTENT_FOLDERS
from engine.support.fileio import temporary_files

if TYPE_CHECKING:
    from engine.library.catalogue import Catalogue

log = logging.getLogger("promptbank.library")
RECOVERED = "recovered"


def tidy(library: Catalogue) -> None:
    """Put aside unnamed content files and remove stale temporary files; log what was done
    (``library check`` lists what is in ``recovered/``)."""
    recovered: list[str] = []
    removed: list[Path] = []
    if _orphans(library) or _temporary(library):
        # Under the write lock no other process is between a file's rename and its commit.
        with library.transaction():
            recovered = [_put_aside(library.root, rel) for rel in _orphans(library)]
            removed = _remove(_temporary(library))
    removed += _remove(_stale_checkpoint_temporaries(library))
    if recovered:
        log.warning("Put aside %d file(s) in the library's folders that no catalogue row "
                    "names (most often a write killed before it was recorded): %s. Nothing "
                    "recorded was changed.", len(recovered), ", ".join(recovered))
    if removed:
        log.info("Removed %d temporary file(s) of writes that never finished: %s",
                 len(removed), ", ".join(str(p.relative_to(library.root)) for p in removed))


def _remove(paths: list[Path]) -> list[Path]:
    for path in paths:
        path.unlink(missing_ok=True)
    return paths


def _named(library: Catalogue) -> set[str]:
    rows = library.db.execute(
        "SELECT path FROM prompts UNION SELECT path FROM datasets "
        "UNION SELECT eval_path FROM datasets WHERE eval_path IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def _orphans(library: Catalogue) -> list[str]:
    files = library.files.content_files()
    if not files:
        return []
    named = _named(library)
    return [rel for rel in files if rel not in named]


def _temporary(library: Catalogue) -> list[Path]:
    return [p for folder in CONTENT_FOLDERS
            for p in temporary_files(library.root / folder, recursive=False)]


def _put_aside(root: Path, rel: str) -> str:
    """Move ``rel`` into ``recovered/<folder>/`` under a free name; its new relative path."""
    source = root / rel
    target = root / RECOVERED / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{Path(rel).stem} ({n}){Path(rel).suffix}")
    source.rename(target)
    return str(target.relative_to(root))


def _stale_checkpoint_temporaries(library: Catalogue) -> list[Path]:
    """Temporary files in the checkpoint folders of runs that no live process trains."""
    found = [p for p in temporary_files(library.root / "checkpoints")
             if p.parent.parent.name == "checkpoints" and p.parent.name.startswith("run-")]
    if not found:
        return []
    live = set()
    for run_id, pid, host, since, token in library.db.execute(
            "SELECT id, owner_pid, owner_host, owner_since, owner_token FROM runs "
            "WHERE status = 'running' AND owner_pid IS NOT NULL").fetchall():
        if RunOwner(pid, host, since or "", token).is_alive():
            live.add(f"run-{run_id}")
    return [p for p in found if p.parent.name not in live and p.is_file()]
