"""``library rebuild``: a lost catalogue recreated from the library's files.

Prompt files carry their task, parent, method and model in their safetensors headers, and
every file's name holds its task id and the start of its sha256 (``store.PROMPT_FILE``,
``store.DATASET_FILE``), so a lost catalogue can be recreated from the files alone; what the
files never held (task kinds and labels, runs, metrics, evaluations) is reported as lost.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library.catalogue import CatalogueLost, CatalogueMissing
from engine.library.datasets import split_indices
from engine.library.headers import header_int, is_prompt_file, read_header_metadata
from engine.library.library import Library
from engine.library.readers import parse_examples
from engine.library.records import dumps
from engine.library.schema import DB_NAME, migrations
from engine.library.store import CONTENT_FOLDERS, DATASET_FILE, PROMPT_FILE, FileStore
from engine.library.tidy import RECOVERED
from engine.support.fileio import sha256_bytes, temporary_files
from engine.support.paths import library_dir

REBUILD_EVAL_FRACTION = 0.1
LOST_IN_REBUILD = ("Task kinds, labels, instructions and descriptions, active versions, runs, "
                   "training curves, metrics and evaluations are not kept in the files: every "
                   "task comes back as a 'generate' task serving its latest version; set the "
                   "rest with `promptbank task edit` and `promptbank activate`.")


@dataclass
class RebuildReport:
    """What ``library rebuild`` recreated, skipped (with the reason) and could not recover."""

    root: str
    tasks: list[str] = field(default_factory=list)
    versions: int = 0
    datasets: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The report as JSON-friendly data."""
        return asdict(self)


@dataclass
class _Prompt:
    """A prompt file found on disk, read for the rebuild."""

    rel: str
    task_id: int
    number: int
    sha256: str
    meta: dict[str, str]


@dataclass
class _Snapshot:
    """A dataset snapshot found on disk, parsed for the rebuild."""

    rel: str
    task_id: int
    name: str
    sha256: str
    eval_file: bool
    rows: int
    format: str
    input_column: str | None
    output_column: str | None


def rebuild_catalogue(root: Path | str | None = None, *, force: bool = False) -> RebuildReport:
    """Recreate the catalogue of a library from its prompt files and dataset snapshots.

    Refused while the catalogue still lists tasks, unless ``force`` (the old catalogue is then
    kept beside the new one). The new catalogue is written to a temporary file and moved into
    place only when complete.
    """
    root = library_dir(root)
    _refuse_live_catalogue(root, force)
    report = RebuildReport(str(root))
    files = FileStore(root)
    _bring_back_recovered(root, report)
    prompts, snapshots = [], []
    for rel in files.content_files():
        try:
            if rel.startswith("prompts/"):
                prompts.append(_read_prompt(files, rel))
            else:
                snapshots.append(_read_snapshot(files, rel))
        except PromptbankError as exc:
            report.skipped.append(f"{rel}: {exc}")
    if not prompts and not snapshots:
        raise PromptbankError(f"The library in {root} has no prompt or dataset files to "
                              "rebuild a catalogue from.", hint="Check the --library folder.")
    _settle_numbers(prompts, files, report)
    report.notes += [f"{p.relative_to(root)} is a temporary file of a write that never "
                     "finished; it was left out (delete it)." for p in temporary_files(root)]
    tmp = root / f".{DB_NAME}.rebuild-{os.getpid()}"
    try:
        _write_catalogue(tmp, prompts, snapshots, report)
        _swap_in(root, tmp, report)
    finally:
        tmp.unlink(missing_ok=True)
    Library(root).close()  # the rebuilt catalogue opens (and is switched to WAL)
    report.notes.append(LOST_IN_REBUILD)
    return report


def _bring_back_recovered(root: Path, report: RebuildReport) -> None:
    """Return files that opening the library put aside (``recovered/``) to their folders, so
    the rebuild considers them; what it does not catalogue is put aside again on next open."""
    for path in sorted((root / RECOVERED).glob("*/*")):
        target = root / path.parent.name / path.name
        if path.parent.name in CONTENT_FOLDERS and path.is_file() and not target.exists():
            path.rename(target)
            report.notes.append(f"{path.relative_to(root)} was considered again.")


def _refuse_live_catalogue(root: Path, force: bool) -> None:
    """Refuse to replace a catalogue that can still be read and lists tasks (unless forced)."""
    try:
        library = Library(root, read_only=True)
    except (CatalogueLost, CatalogueMissing):
        return
    except PromptbankError as exc:
        if force:
            return
        raise PromptbankError(f"The catalogue of {root} exists but cannot be read ({exc}).",
                              hint="Add --force to rebuild it anyway (the old one is kept "
                              "beside it).") from exc
    tasks = len(library.list_tasks())
    library.close()
    if not force:
        raise PromptbankError(
            f"The catalogue of {root} still lists {tasks} task(s); rebuilding would replace it.",
            hint="Run `promptbank library check` first; add --force to rebuild it anyway (the "
            "old one is kept beside it).")


def _read_prompt(files: FileStore, rel: str) -> _Prompt:
    match = PROMPT_FILE.fullmatch(rel)
    if match is None:
        raise PromptbankError("not named like a library prompt file")
    data = files.path(rel).read_bytes()
    digest = sha256_bytes(data)
    if not digest.startswith(match["sha"]):
        raise PromptbankError("its contents do not match the checksum in its name (changed "
                              "after it was saved)")
    meta = read_header_metadata(data, source="the file")
    if not is_prompt_file(data, meta):
        raise PromptbankError("not a Promptbank prompt file")
    for key in ("length", "hidden_size"):
        header_int(meta, key, source="the file")
    if not meta.get("model_fingerprint"):
        raise PromptbankError("its header names no model")
    return _Prompt(rel, int(match["task"]), int(match["number"]), digest, meta)


def _settle_numbers(prompts: list[_Prompt], files: FileStore, report: RebuildReport) -> None:
    """Two files for one task's version number (a run resumed after a crash that left its
    first file without a row) both stay: the older keeps the number, each later one gets
    the task's next free number, and the report says which."""
    by_slot: dict[tuple[int, int], list[_Prompt]] = {}
    for p in prompts:
        by_slot.setdefault((p.task_id, p.number), []).append(p)
    top = {task: max(n for t, n in by_slot if t == task) for task, _ in by_slot}
    for (task, number), found in sorted(by_slot.items()):
        # Creation times stated to the second often tie; the file's time breaks the tie.
        found.sort(key=lambda p: (_created(files, p.rel, p.meta.get("created")),
                                  files.path(p.rel).stat().st_mtime, p.rel))
        for later in found[1:]:
            top[task] += 1
            later.number = top[task]
            report.notes.append(f"{found[0].rel} and {later.rel} were both version {number} "
                                f"of task {task}: the later one is now version {top[task]}.")


def _read_snapshot(files: FileStore, rel: str) -> _Snapshot:
    match = DATASET_FILE.fullmatch(rel)
    if match is None:
        raise PromptbankError("not named like a library dataset snapshot")
    data = files.path(rel).read_bytes()
    digest = sha256_bytes(data)
    if not digest.startswith(match["sha"]):
        raise PromptbankError("its contents do not match the checksum in its name (changed "
                              "after it was saved)")
    read = parse_examples(data, match["name"])
    return _Snapshot(rel, int(match["task"]), match["name"], digest, bool(match["eval"]),
                     len(read.examples), read.format, read.input_column, read.output_column)


def _task_names(prompts: list[_Prompt], task_ids: set[int]) -> dict[int, str]:
    """Each task id's name: from its newest prompt's header, else ``task-N``; distinct."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for task_id in sorted(task_ids):
        own = sorted((p for p in prompts if p.task_id == task_id), key=lambda p: p.number)
        base = next((p.meta["task"] for p in reversed(own) if p.meta.get("task")),
                    f"task-{task_id}")
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base} ({n})"
        names[task_id] = name
        taken.add(name)
    return names


def _created(files: FileStore, rel: str, stated: str | None = None) -> str:
    if stated:
        return stated
    stamp = files.path(rel).stat().st_mtime
    return datetime.fromtimestamp(stamp, UTC).replace(microsecond=0).isoformat()


def _write_catalogue(path: Path, prompts: list[_Prompt], snapshots: list[_Snapshot],
                     report: RebuildReport) -> None:
    """A complete catalogue for the files in a new database file at ``path``."""
    files = FileStore(path.parent)
    names = _task_names(prompts, {p.task_id for p in prompts} | {s.task_id for s in snapshots})
    db = Database(sqlite3.connect(str(path)))
    try:
        migrations.apply(db)
        db.execute(f"PRAGMA user_version = {len(migrations._migrations)}")
        with db.conn:
            for task_id, name in names.items():
                first = min(_created(files, x.rel) for x in [*prompts, *snapshots]
                             if x.task_id == task_id)
                db["tasks"].insert({"id": task_id, "name": name, "kind": "generate",
                                    "labels": "[]", "description": "", "instruction": "",
                                    "input_template": None, "active_version_id": None,
                                    "created": first})
                report.tasks.append(name)
            _insert_versions(db, files, prompts, names)
            report.versions = len(prompts)
            _insert_datasets(db, files, snapshots)
            report.datasets = len(snapshots)
    finally:
        db.close()
    if any(s.eval_file for s in snapshots):
        report.notes.append("Separate evaluation files come back as evaluation datasets; "
                            "their tasks' training files keep every row for training.")
    split_tasks = {s.task_id for s in snapshots if not s.eval_file} - {
        s.task_id for s in snapshots if s.eval_file}
    if split_tasks:
        report.notes.append(f"Training datasets get a fresh split ({REBUILD_EVAL_FRACTION:.0%} "
                            "held out, seed 0); a different split made earlier is not known.")


def _insert_versions(db: Database, files: FileStore, prompts: list[_Prompt],
                     names: dict[int, str]) -> None:
    ids: dict[tuple[int, int], int] = {}
    for p in sorted(prompts, key=lambda p: (p.task_id, p.number)):
        meta = p.meta
        parent_id = None
        task_name, _, parent_number = meta.get("parent", "").rpartition("@v")
        if parent_number.isdigit() and task_name in (names[p.task_id], meta.get("task")):
            parent_id = ids.get((p.task_id, int(parent_number)))
        ids[(p.task_id, p.number)] = db["prompts"].insert({
            "task_id": p.task_id, "number": p.number, "method": meta["method"],
            "length": int(meta["length"]), "init": meta.get("init", ""), "parent_id": parent_id,
            "run_id": None, "fingerprint": meta["model_fingerprint"],
            "hidden_size": int(meta["hidden_size"]), "path": p.rel, "sha256": p.sha256,
            "metrics": "{}", "created": _created(files, p.rel, meta.get("created"))}).last_pk


def _insert_datasets(db: Database, files: FileStore, snapshots: list[_Snapshot]) -> None:
    with_eval_file = {s.task_id for s in snapshots if s.eval_file}
    for s in snapshots:
        if s.eval_file:
            role, split = "eval", list(range(s.rows))
        elif s.task_id in with_eval_file:
            role, split = "train", []
        else:
            role, split = "train", split_indices(s.rows, REBUILD_EVAL_FRACTION, 0)
        eval_rows = len(split)
        db["datasets"].insert({
            "task_id": s.task_id, "name": s.name, "path": s.rel, "sha256": s.sha256,
            "format": s.format, "rows": s.rows, "train_rows": s.rows - eval_rows,
            "eval_rows": eval_rows, "role": role, "eval_path": None, "eval_sha256": None,
            "input_column": s.input_column, "output_column": s.output_column,
            "split": dumps(split), "seed": 0, "created": _created(files, s.rel)})


def _swap_in(root: Path, tmp: Path, report: RebuildReport) -> None:
    """Move the new catalogue into place; an old, non-empty one is kept beside it."""
    db = root / DB_NAME
    wal, shm = root / f"{DB_NAME}-wal", root / f"{DB_NAME}-shm"
    if db.is_file() and db.stat().st_size:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = root / f"{DB_NAME}.replaced-{stamp}"
        os.replace(db, kept)
        if wal.exists():
            os.replace(wal, root / f"{kept.name}-wal")
        report.notes.append(f"The old catalogue was kept as {kept.name}.")
    # A write-ahead log left from the old catalogue would be replayed into the new one.
    for stale in (wal, shm):
        stale.unlink(missing_ok=True)
    os.replace(tmp, db)
