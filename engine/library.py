"""The library: a SQLite catalogue (sqlite-utils, migrations, WAL) and a checksummed file store.

Torch-free, so the desktop reads it directly. Every write happens in one ``BEGIN IMMEDIATE``
transaction (so two processes can share a library); files are written atomically before the
commit and removed again if the transaction fails, so bad input leaves the library as it was.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from engine.data import Example, ReadResult, parse_examples, read_dataset_bytes
from engine.errors import PromptbankError
from engine.fileio import atomic_write_bytes, sha256_bytes
from engine.paths import library_dir
from engine.st_header import read_header_metadata

DB_NAME = "library.db"
FOLDERS = ("prompts", "datasets", "checkpoints", "exports")
KINDS = ("generate", "classify")
RUN_STATUSES = ("running", "done", "cancelled", "failed")
BUSY_TIMEOUT_MS = 15000

migrations = Migrations("promptbank")


def _script(db: Database, sql: str) -> None:
    # executescript() would COMMIT the migration's transaction first, so run one by one.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m001_initial(db: Database) -> None:
    """The first schema: every table of the catalogue."""
    _script(db, """
    CREATE TABLE models (
        fingerprint TEXT PRIMARY KEY, name TEXT, hidden_size INTEGER, layers INTEGER,
        kv_heads INTEGER, head_dim INTEGER, info TEXT NOT NULL DEFAULT '{}', seen TEXT);
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('generate', 'classify')),
        labels TEXT NOT NULL DEFAULT '[]', description TEXT NOT NULL DEFAULT '',
        instruction TEXT NOT NULL DEFAULT '', input_template TEXT,
        active_version_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
        created TEXT NOT NULL);
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        name TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, format TEXT NOT NULL,
        rows INTEGER NOT NULL, train_rows INTEGER NOT NULL, eval_rows INTEGER NOT NULL,
        role TEXT NOT NULL DEFAULT 'train', eval_path TEXT, eval_sha256 TEXT,
        input_column TEXT, output_column TEXT, split TEXT NOT NULL DEFAULT '[]',
        seed INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL);
    CREATE TABLE prompts (
        id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        number INTEGER NOT NULL, method TEXT NOT NULL, length INTEGER NOT NULL,
        init TEXT NOT NULL DEFAULT '',
        parent_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        fingerprint TEXT NOT NULL, hidden_size INTEGER NOT NULL, path TEXT NOT NULL,
        sha256 TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL,
        UNIQUE (task_id, number));
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        kind TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',
        parent_version_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
        version_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
        summary TEXT NOT NULL DEFAULT '{}', started TEXT NOT NULL, finished TEXT);
    CREATE TABLE run_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER NOT NULL,
        metrics TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (run_id, step));
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        version_id INTEGER REFERENCES prompts(id) ON DELETE CASCADE,
        baseline TEXT NOT NULL, data_sha256 TEXT NOT NULL, metrics TEXT NOT NULL,
        n INTEGER NOT NULL, created TEXT NOT NULL);
    """)


@migrations()
def m002_indexes(db: Database) -> None:
    """Indexes for the per-task listings the desktop shows."""
    _script(db, """
    CREATE INDEX idx_datasets_task ON datasets(task_id);
    CREATE INDEX idx_runs_task ON runs(task_id);
    CREATE INDEX idx_evaluations_task ON evaluations(task_id);
    CREATE INDEX idx_prompts_parent ON prompts(parent_id);
    """)


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class Task:
    """A named task: what its prompts are trained to do."""

    id: int
    name: str
    kind: str
    labels: list[str]
    description: str
    instruction: str
    input_template: str | None
    active_version_id: int | None
    created: str


@dataclass
class Dataset:
    """An immutable snapshot of a dataset file inside the library, with its split."""

    id: int
    task_id: int
    name: str
    path: str
    sha256: str
    format: str
    rows: int
    train_rows: int
    eval_rows: int
    created: str
    role: str = "train"
    eval_path: str | None = None
    eval_sha256: str | None = None
    input_column: str | None = None
    output_column: str | None = None
    seed: int = 0


@dataclass
class Version:
    """One saved prompt version of a task (``number`` counts 1, 2, … per task)."""

    id: int
    task_id: int
    number: int
    method: str
    length: int
    init: str
    parent_id: int | None
    run_id: int | None
    fingerprint: str
    hidden_size: int
    path: str
    sha256: str
    metrics: dict = field(default_factory=dict)
    created: str = ""


@dataclass
class Run:
    """A training (or continuation) run and its outcome."""

    id: int
    task_id: int
    kind: str
    status: str
    config: dict
    parent_version_id: int | None
    version_id: int | None
    summary: dict
    started: str
    finished: str | None


@dataclass
class Evaluation:
    """Metrics of one version (or a baseline) on one evaluation set."""

    id: int
    task_id: int
    version_id: int | None
    baseline: str
    data_sha256: str
    metrics: dict
    n: int
    created: str


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _task(row: dict) -> Task:
    return Task(row["id"], row["name"], row["kind"], _loads(row["labels"], []),
                row["description"], row["instruction"], row["input_template"],
                row["active_version_id"], row["created"])


def _dataset(row: dict) -> Dataset:
    keys = Dataset.__dataclass_fields__
    return Dataset(**{k: row[k] for k in keys})


def _version(row: dict) -> Version:
    values = {k: row[k] for k in Version.__dataclass_fields__}
    values["metrics"] = _loads(row["metrics"], {})
    return Version(**values)


def _run(row: dict) -> Run:
    values = {k: row[k] for k in Run.__dataclass_fields__}
    values["config"] = _loads(row["config"], {})
    values["summary"] = _loads(row["summary"], {})
    return Run(**values)


def _evaluation(row: dict) -> Evaluation:
    values = {k: row[k] for k in Evaluation.__dataclass_fields__}
    values["metrics"] = _loads(row["metrics"], {})
    return Evaluation(**values)


@dataclass
class _Source:
    """A dataset file read once: its name, bytes (the snapshot) and parsed examples."""

    name: str
    data: bytes
    read: ReadResult

    @classmethod
    def load(cls, path: Path | str, input_column: str | None,
             output_column: str | None) -> _Source:
        path = Path(path)
        data = read_dataset_bytes(path)
        return cls(path.name, data, parse_examples(data, path.name, input_column=input_column,
                                                   output_column=output_column))


def split_indices(rows: int, eval_fraction: float, seed: int) -> list[int]:
    """The sorted row indices held out for evaluation (deterministic for a seed)."""
    if rows < 2 or eval_fraction <= 0:
        return []
    n_eval = min(rows - 1, max(1, round(rows * eval_fraction)))
    order = list(range(rows))
    random.Random(seed).shuffle(order)
    return sorted(order[:n_eval])


class Library:
    """The catalogue and file store of one library folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = library_dir(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._depth = 0
        self._written: list[Path] = []
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

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (for backups and comparisons)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All catalogue writes inside are one transaction; files written for it are removed
        again if it fails. Nested use is a savepoint, so an inner failure undoes only itself."""
        conn = self.db.conn
        first_file = len(self._written)
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
                for path in self._written[first_file:]:
                    path.unlink(missing_ok=True)
                raise
            finally:
                self._depth -= 1
                if not self._depth:
                    self._written.clear()
        except sqlite3.OperationalError as exc:
            raise PromptbankError(f"The library catalogue could not be written ({exc}).",
                                  hint="Free some disk space or close other programs using "
                                  "the library, then try again; nothing was changed.") from exc

    def _write_file(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        if not self._depth:
            raise RuntimeError("library files are written inside a transaction")
        digest = atomic_write_bytes(path, data)
        self._written.append(path)
        return digest

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        cursor = self.db.execute(sql, params)
        cols = [c[0] for c in cursor.description]
        return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]

    def _row(self, sql: str, params: tuple, missing: str, hint: str = "") -> dict:
        rows = self._rows(sql, params)
        if not rows:
            raise PromptbankError(missing, hint=hint)
        return rows[0]

    # Models -------------------------------------------------------------------------------

    def record_model(self, info: dict) -> None:
        """Remember a model the library has seen (``ModelInfo.to_dict()``), by fingerprint."""
        row = {"fingerprint": info["fingerprint"], "name": info.get("name"),
               "hidden_size": info.get("hidden_size"), "layers": info.get("layers"),
               "kv_heads": info.get("kv_heads"), "head_dim": info.get("head_dim"),
               "info": _dumps(info), "seen": utc_now()}
        with self.transaction():
            self.db["models"].upsert(row, pk="fingerprint")

    def get_model(self, fingerprint: str) -> dict | None:
        """The recorded model info for a fingerprint, or None."""
        rows = self._rows("SELECT info FROM models WHERE fingerprint = ?", (fingerprint,))
        return _loads(rows[0]["info"], {}) if rows else None

    def list_models(self) -> list[dict]:
        """Every recorded model's info, most recently seen first."""
        rows = self._rows("SELECT info FROM models ORDER BY seen DESC")
        return [_loads(r["info"], {}) for r in rows]

    # Tasks --------------------------------------------------------------------------------

    def _task_row(self, name: str) -> dict:
        return self._row("SELECT * FROM tasks WHERE name = ?", (name,),
                         f"There is no task named '{name}'.",
                         "See `promptbank task list` for the tasks in this library.")

    @staticmethod
    def _check_task_fields(kind: str, labels: list[str] | None, name: str | None = None) -> None:
        if name is not None and not name.strip():
            raise PromptbankError("A task name cannot be empty.", hint="Give the task a name.")
        if name is not None and (name != name.strip() or "/" in name or "\n" in name):
            raise PromptbankError(f"The task name '{name}' has leading or trailing spaces, a "
                                  "slash or a line break.", hint="Choose a plainer name.")
        if kind not in KINDS:
            raise PromptbankError(f"Unknown task kind '{kind}'.",
                                  hint="Use 'generate' or 'classify'.")
        if labels is not None and (len(set(labels)) != len(labels)
                                   or any(not str(x).strip() for x in labels)):
            raise PromptbankError("The labels must be distinct and non-empty.",
                                  hint="List each label once, e.g. --labels positive,negative.")

    def create_task(self, name: str, *, kind: str = "generate", labels: list[str] | None = None,
                    description: str = "", instruction: str = "",
                    input_template: str | None = None, data: Path | str | None = None,
                    eval_path: Path | str | None = None, input_column: str | None = None,
                    output_column: str | None = None, eval_fraction: float = 0.1,
                    seed: int = 0) -> Task:
        """Create a task, optionally with its first dataset, all in one transaction.

        A classify task given data but no labels takes its labels from the data's outputs.
        """
        self._check_task_fields(kind, labels, name)
        source = eval_source = None
        if data is not None:
            source = _Source.load(data, input_column, output_column)
            if eval_path is not None:
                eval_source = _Source.load(eval_path, input_column, output_column)
            if kind == "classify" and not labels:
                labels = sorted({e.output for e in source.read.examples})
        if kind == "classify" and len(labels or []) < 2:
            raise PromptbankError(f"The classify task '{name}' needs at least two labels.",
                                  hint="Give them with --labels a,b or in the data's outputs.")
        with self.transaction():
            if self._rows("SELECT id FROM tasks WHERE name = ?", (name,)):
                raise PromptbankError(f"A task named '{name}' already exists.",
                                      hint="Choose another name or add data to that task.")
            self.db["tasks"].insert({
                "name": name, "kind": kind, "labels": _dumps(list(labels or [])),
                "description": description, "instruction": instruction,
                "input_template": input_template, "active_version_id": None,
                "created": utc_now()})
            task = self.get_task(name)
            if source is not None:
                self._insert_dataset(task, source, eval_source, eval_fraction, seed, "train")
        return self.get_task(name)

    def get_task(self, name: str) -> Task:
        """The task called ``name``; a PromptbankError if there is none."""
        return _task(self._task_row(name))

    def get_task_by_id(self, task_id: int) -> Task:
        """The task with this id."""
        return _task(self._row("SELECT * FROM tasks WHERE id = ?", (task_id,),
                               f"There is no task with id {task_id}."))

    def list_tasks(self) -> list[Task]:
        """Every task, by name."""
        return [_task(r) for r in self._rows("SELECT * FROM tasks ORDER BY name COLLATE NOCASE")]

    def update_task(self, name: str, **fields: Any) -> Task:
        """Change a task's kind, labels, description, instruction or input template."""
        allowed = {"kind", "labels", "description", "instruction", "input_template"}
        unknown = set(fields) - allowed
        if unknown:
            raise PromptbankError(f"A task has no editable field {sorted(unknown)}.",
                                  hint=f"Edit one of: {', '.join(sorted(allowed))}.")
        task = self.get_task(name)
        kind = fields.get("kind", task.kind)
        labels = fields.get("labels", task.labels)
        self._check_task_fields(kind, list(labels) if labels is not None else None)
        if kind == "classify" and len(labels or []) < 2:
            raise PromptbankError(f"The classify task '{name}' needs at least two labels.",
                                  hint="Give them with --labels a,b.")
        if "labels" in fields:
            fields["labels"] = _dumps(list(labels or []))
        if fields:
            with self.transaction():
                self.db["tasks"].update(task.id, fields)
        return self.get_task(name)

    def rename_task(self, old: str, new: str) -> Task:
        """Rename a task (its files are kept under the task's id, so none move)."""
        self._check_task_fields("generate", None, new)
        with self.transaction():
            task = self.get_task(old)
            if old != new and self._rows("SELECT id FROM tasks WHERE name = ?", (new,)):
                raise PromptbankError(f"A task named '{new}' already exists.",
                                      hint="Choose another name.")
            self.db["tasks"].update(task.id, {"name": new})
        return self.get_task(new)

    def delete_task(self, name: str) -> None:
        """Delete a task's rows in one transaction, and only then its files."""
        with self.transaction():
            task = self.get_task(name)
            files = [r["path"] for r in self._rows(
                "SELECT path FROM prompts WHERE task_id = ?", (task.id,))]
            for row in self._rows("SELECT path, eval_path FROM datasets WHERE task_id = ?",
                                  (task.id,)):
                files += [p for p in (row["path"], row["eval_path"]) if p]
            runs = [r["id"] for r in self._rows("SELECT id FROM runs WHERE task_id = ?",
                                                (task.id,))]
            self.db.execute("UPDATE tasks SET active_version_id = NULL WHERE id = ?", (task.id,))
            self.db.execute("DELETE FROM tasks WHERE id = ?", (task.id,))
        for rel in files:
            (self.root / rel).unlink(missing_ok=True)
        for run_id in runs:
            shutil.rmtree(self.checkpoint_dir(run_id), ignore_errors=True)

    # Datasets -----------------------------------------------------------------------------

    def add_dataset(self, task: str, path: Path | str, *, eval_path: Path | str | None = None,
                    input_column: str | None = None, output_column: str | None = None,
                    eval_fraction: float = 0.1, seed: int = 0, role: str = "train") -> Dataset:
        """Snapshot a dataset file into the task (all or nothing) with a fixed-seed split.

        ``role="eval"`` keeps every row for evaluation; an ``eval_path`` file replaces the split.
        A file the task already has gives back that dataset unchanged.
        """
        if role not in ("train", "eval"):
            raise PromptbankError(f"Unknown dataset role '{role}'.", hint="Use train or eval.")
        if not 0 <= eval_fraction < 1:
            raise PromptbankError("The eval fraction must be at least 0 and below 1.")
        source = _Source.load(path, input_column, output_column)
        eval_source = (_Source.load(eval_path, input_column, output_column)
                       if eval_path is not None else None)
        with self.transaction():
            return self._insert_dataset(self.get_task(task), source, eval_source,
                                        eval_fraction, seed, role)

    def add_dataset_bytes(self, task: str, name: str, data: bytes, *,
                          role: str = "train", eval_fraction: float = 0.1,
                          seed: int = 0) -> Dataset:
        """Like ``add_dataset`` for data held in memory (``name`` picks the format)."""
        source = _Source(name, data, parse_examples(data, name))
        with self.transaction():
            return self._insert_dataset(self.get_task(task), source, None, eval_fraction, seed,
                                        role)

    def _check_labels(self, task: Task, read: ReadResult, source: str) -> None:
        if task.kind != "classify":
            return
        labels = set(task.labels)
        for number, example in enumerate(read.examples, start=1):
            if example.output not in labels:
                raise PromptbankError(
                    f"Example {number} of {source} has the label '{example.output[:40]}', which "
                    f"is not one of the task's labels ({', '.join(task.labels)}).",
                    hint="Fix the data or edit the task's labels.")

    def _insert_dataset(self, task: Task, source: _Source, eval_source: _Source | None,
                        eval_fraction: float, seed: int, role: str) -> Dataset:
        if role not in ("train", "eval"):
            raise PromptbankError(f"Unknown dataset role '{role}'.", hint="Use train or eval.")
        self._check_labels(task, source.read, source.name)
        digest = sha256_bytes(source.data)
        same = self._rows("SELECT id FROM datasets WHERE task_id = ? AND sha256 = ?",
                          (task.id, digest))
        if same:  # the same file again (e.g. continuing on it twice) is the same snapshot
            return self.get_dataset(same[0]["id"])
        rel = f"datasets/t{task.id}-{digest[:16]}-{_safe_name(source.name)}"
        self._write_file(rel, source.data)
        eval_rel = eval_digest = None
        rows = len(source.read.examples)
        if eval_source is not None:
            self._check_labels(task, eval_source.read, eval_source.name)
            eval_digest = sha256_bytes(eval_source.data)
            eval_rel = f"datasets/t{task.id}-{eval_digest[:16]}-eval-{_safe_name(eval_source.name)}"
            self._write_file(eval_rel, eval_source.data)
            split: list[int] = []
            train_rows, eval_rows = rows, len(eval_source.read.examples)
        elif role == "eval":
            split = list(range(rows))
            train_rows, eval_rows = 0, rows
        else:
            split = split_indices(rows, eval_fraction, seed)
            train_rows, eval_rows = rows - len(split), len(split)
        dataset_id = self.db["datasets"].insert({
            "task_id": task.id, "name": source.name, "path": rel, "sha256": digest,
            "format": source.read.format, "rows": rows, "train_rows": train_rows,
            "eval_rows": eval_rows, "role": role, "eval_path": eval_rel,
            "eval_sha256": eval_digest, "input_column": source.read.input_column,
            "output_column": source.read.output_column, "split": _dumps(split), "seed": seed,
            "created": utc_now()}).last_pk
        return self.get_dataset(dataset_id)

    def get_dataset(self, dataset_id: int) -> Dataset:
        """The dataset with this id."""
        return _dataset(self._row("SELECT * FROM datasets WHERE id = ?", (dataset_id,),
                                  f"There is no dataset with id {dataset_id}."))

    def list_datasets(self, task: str) -> list[Dataset]:
        """The task's datasets, oldest first."""
        task_id = self.get_task(task).id
        return [_dataset(r) for r in self._rows(
            "SELECT * FROM datasets WHERE task_id = ? ORDER BY id", (task_id,))]

    def _snapshot(self, rel: str, sha256: str,
                  columns: tuple[str | None, str | None]) -> ReadResult:
        path = self.root / rel
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise PromptbankError(f"The dataset snapshot {path} is missing.",
                                  hint="Restore the library folder from a backup.") from exc
        if sha256_bytes(data) != sha256:
            raise PromptbankError(f"The dataset snapshot {path} does not match its checksum.",
                                  hint="Restore the library folder from a backup.")
        return parse_examples(data, path.name, input_column=columns[0],
                              output_column=columns[1])

    def examples(self, task: str, split: str = "train",
                 dataset_id: int | None = None) -> list[Example]:
        """The task's examples of one split ("train" or "eval"), over all its datasets or one."""
        if split not in ("train", "eval"):
            raise PromptbankError(f"Unknown split '{split}'.", hint="Use train or eval.")
        datasets = self.list_datasets(task)
        if dataset_id is not None:
            datasets = [d for d in datasets if d.id == dataset_id]
            if not datasets:
                raise PromptbankError(f"The task '{task}' has no dataset with id {dataset_id}.")
        out: list[Example] = []
        for ds in datasets:
            row = self._row("SELECT split FROM datasets WHERE id = ?", (ds.id,), "")
            columns = (ds.input_column, ds.output_column)
            if ds.eval_path:
                chosen = ds.path if split == "train" else ds.eval_path
                digest = ds.sha256 if split == "train" else ds.eval_sha256
                out += self._snapshot(chosen, digest or "", columns).examples
                continue
            held = set(_loads(row["split"], []))
            examples = self._snapshot(ds.path, ds.sha256, columns).examples
            out += [e for i, e in enumerate(examples) if (i in held) == (split == "eval")]
        return out

    # Versions -----------------------------------------------------------------------------

    def add_version(self, task: str, prompt_bytes: bytes, *, parent_id: int | None = None,
                    run_id: int | None = None, metrics: dict | None = None) -> Version:
        """Store a new prompt version (the next number; never overwrites) and return it."""
        meta = read_header_metadata(prompt_bytes, source="The prompt data")
        if meta.get("format") != "promptbank" or meta.get("method") not in ("prompt", "prefix"):
            raise PromptbankError("The prompt data is not a Promptbank prompt file.",
                                  hint="Save prompts with SoftPrompt.to_bytes().")
        try:
            length, hidden = int(meta["length"]), int(meta["hidden_size"])
            fingerprint = meta["model_fingerprint"]
        except (KeyError, ValueError) as exc:
            raise PromptbankError("The prompt file's header lacks its shape or model.",
                                  hint="Save prompts with SoftPrompt.to_bytes().") from exc
        with self.transaction():
            record = self.get_task(task)
            if parent_id is not None:
                self._row("SELECT id FROM prompts WHERE id = ?", (parent_id,),
                          f"The parent version id {parent_id} does not exist.")
            number = self.db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM prompts "
                                     "WHERE task_id = ?", (record.id,)).fetchone()[0]
            digest = sha256_bytes(prompt_bytes)
            rel = f"prompts/t{record.id}-v{number}-{digest[:12]}.safetensors"
            self._write_file(rel, prompt_bytes)
            version_id = self.db["prompts"].insert({
                "task_id": record.id, "number": number, "method": meta["method"],
                "length": length, "init": meta.get("init", ""), "parent_id": parent_id,
                "run_id": run_id, "fingerprint": fingerprint, "hidden_size": hidden,
                "path": rel, "sha256": digest, "metrics": _dumps(metrics or {}),
                "created": meta.get("created") or utc_now()}).last_pk
        return self.version_by_id(version_id)

    def version_by_id(self, version_id: int) -> Version:
        """The version with this catalogue id."""
        return _version(self._row("SELECT * FROM prompts WHERE id = ?", (version_id,),
                                  f"There is no prompt version with id {version_id}."))

    def get_version(self, task: str, version: int | None = None) -> Version:
        """Version ``version`` of a task; None gives the active one (else the latest)."""
        record = self.get_task(task)
        if version is None:
            if record.active_version_id is not None:
                return self.version_by_id(record.active_version_id)
            rows = self._rows("SELECT * FROM prompts WHERE task_id = ? ORDER BY number DESC "
                              "LIMIT 1", (record.id,))
            if not rows:
                raise PromptbankError(f"The task '{task}' has no trained prompt yet.",
                                      hint=f"Train one with `promptbank train {task}`.")
            return _version(rows[0])
        return _version(self._row(
            "SELECT * FROM prompts WHERE task_id = ? AND number = ?", (record.id, version),
            f"The task '{task}' has no version {version}.",
            f"See `promptbank versions {task}`."))

    def list_versions(self, task: str) -> list[Version]:
        """The task's versions, oldest first."""
        task_id = self.get_task(task).id
        return [_version(r) for r in self._rows(
            "SELECT * FROM prompts WHERE task_id = ? ORDER BY number", (task_id,))]

    def set_active(self, task: str, number: int) -> Version:
        """Make version ``number`` the one the task uses."""
        with self.transaction():
            version = self.get_version(task, number)
            self.db["tasks"].update(version.task_id, {"active_version_id": version.id})
        return version

    def version_path(self, version: Version) -> Path:
        """The absolute path of a version's prompt file."""
        return self.root / version.path

    def read_version_bytes(self, version: Version) -> bytes:
        """A version's file, checked against the catalogue's sha256."""
        path = self.version_path(version)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise PromptbankError(f"The prompt file {path} is missing.",
                                  hint="Restore the library folder from a backup.") from exc
        if sha256_bytes(data) != version.sha256:
            raise PromptbankError(
                f"The prompt file {path} does not match its checksum: it was changed or "
                "truncated after it was saved.", hint="Restore it from a backup or retrain.")
        return data

    def set_version_metrics(self, version_id: int, metrics: dict) -> Version:
        """Merge ``metrics`` into a version's stored metrics."""
        with self.transaction():
            merged = {**self.version_by_id(version_id).metrics, **metrics}
            self.db["prompts"].update(version_id, {"metrics": _dumps(merged)})
        return self.version_by_id(version_id)

    # Runs ---------------------------------------------------------------------------------

    def create_run(self, task: str, config: dict, *, parent_version_id: int | None = None,
                   kind: str = "train") -> Run:
        """Record a run that is starting."""
        with self.transaction():
            record = self.get_task(task)
            run_id = self.db["runs"].insert({
                "task_id": record.id, "kind": kind, "status": "running",
                "config": _dumps(config), "parent_version_id": parent_version_id,
                "version_id": None, "summary": "{}", "started": utc_now(),
                "finished": None}).last_pk
        return self.get_run(run_id)

    def log_metrics(self, run_id: int, step: int, metrics: dict) -> None:
        """Record one step's metrics (a repeated step after a resume replaces the old one)."""
        with self.transaction():
            self.db["run_metrics"].upsert({"run_id": run_id, "step": step,
                                           "metrics": _dumps(metrics), "created": utc_now()},
                                          pk=("run_id", "step"))

    def finish_run(self, run_id: int, status: str, *, version_id: int | None = None,
                   summary: dict | None = None) -> Run:
        """Set a run's final (or resumable) status, its version and summary."""
        if status not in RUN_STATUSES:
            raise PromptbankError(f"Unknown run status '{status}'.",
                                  hint=f"Use one of: {', '.join(RUN_STATUSES)}.")
        with self.transaction():
            run = self.get_run(run_id)
            self.db["runs"].update(run_id, {
                "status": status, "version_id": version_id or run.version_id,
                "summary": _dumps(summary if summary is not None else run.summary),
                "finished": None if status == "running" else utc_now()})
        return self.get_run(run_id)

    def get_run(self, run_id: int) -> Run:
        """The run with this id."""
        return _run(self._row("SELECT * FROM runs WHERE id = ?", (run_id,),
                              f"There is no run with id {run_id}."))

    def list_runs(self, task: str | None = None) -> list[Run]:
        """Runs of one task (or all), newest first."""
        if task is None:
            return [_run(r) for r in self._rows("SELECT * FROM runs ORDER BY id DESC")]
        task_id = self.get_task(task).id
        return [_run(r) for r in self._rows(
            "SELECT * FROM runs WHERE task_id = ? ORDER BY id DESC", (task_id,))]

    def run_metrics(self, run_id: int) -> list[dict]:
        """A run's per-step metrics in step order, each with its ``step``."""
        return [{"step": r["step"], **_loads(r["metrics"], {})} for r in self._rows(
            "SELECT step, metrics FROM run_metrics WHERE run_id = ? ORDER BY step", (run_id,))]

    def checkpoint_dir(self, run_id: int) -> Path:
        """The folder for a run's checkpoints (not created here)."""
        return self.root / "checkpoints" / f"run-{run_id}"

    # Evaluations --------------------------------------------------------------------------

    def add_evaluation(self, task: str, version_id: int | None, *, data_sha256: str,
                       baseline: str, metrics: dict, n: int) -> Evaluation:
        """Record an evaluation of a version (or a baseline when ``version_id`` is None)."""
        with self.transaction():
            record = self.get_task(task)
            eval_id = self.db["evaluations"].insert({
                "task_id": record.id, "version_id": version_id, "baseline": baseline,
                "data_sha256": data_sha256, "metrics": _dumps(metrics), "n": n,
                "created": utc_now()}).last_pk
        return _evaluation(self._row("SELECT * FROM evaluations WHERE id = ?", (eval_id,), ""))

    def list_evaluations(self, task: str) -> list[Evaluation]:
        """The task's evaluations, oldest first."""
        task_id = self.get_task(task).id
        return [_evaluation(r) for r in self._rows(
            "SELECT * FROM evaluations WHERE task_id = ? ORDER BY id", (task_id,))]


def _safe_name(name: str) -> str:
    """A file name reduced to safe characters (the snapshot keeps the original's extension)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-80:]
    return cleaned.lstrip(".") or "data"
