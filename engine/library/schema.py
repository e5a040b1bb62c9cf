"""The catalogue's schema: sqlite-utils migrations, applied in order when a library opens."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

DB_NAME = "library.db"
#: The kinds a user gives a task; a ``universal`` task is made by ``promptbank universal``.
KINDS = ("generate", "classify")
TASK_KINDS = (*KINDS, "universal")
RUN_STATUSES = ("running", "done", "cancelled", "failed")

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


@migrations()
def m003_run_owner(db: Database) -> None:
    """The process that trains a running run, so no second process trains it too."""
    _script(db, """
    ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
    ALTER TABLE runs ADD COLUMN owner_host TEXT;
    ALTER TABLE runs ADD COLUMN owner_since TEXT;
    ALTER TABLE runs ADD COLUMN owner_token TEXT;
    """)


@migrations()
def m004_universal_and_joint_runs(db: Database) -> None:
    """Tasks of kind ``universal`` (a prompt trained on several source tasks), and the joint
    job a run belongs to (``runs.joint_id``: the id of the job's first run).

    SQLite changes a CHECK constraint only by copying the table; the catalogue runs
    migrations with foreign keys off, so dropping the old table deletes nothing that points
    at it (engine.library.catalogue).
    """
    _script(db, """
    CREATE TABLE tasks_m004 (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('generate', 'classify', 'universal')),
        labels TEXT NOT NULL DEFAULT '[]', description TEXT NOT NULL DEFAULT '',
        instruction TEXT NOT NULL DEFAULT '', input_template TEXT,
        active_version_id INTEGER REFERENCES prompts(id) ON DELETE SET NULL,
        created TEXT NOT NULL);
    INSERT INTO tasks_m004 (id, name, kind, labels, description, instruction, input_template,
                            active_version_id, created)
        SELECT id, name, kind, labels, description, instruction, input_template,
               active_version_id, created FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_m004 RENAME TO tasks;
    ALTER TABLE runs ADD COLUMN joint_id INTEGER REFERENCES runs(id) ON DELETE SET NULL;
    CREATE INDEX idx_runs_joint ON runs(joint_id);
    """)
