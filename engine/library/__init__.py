"""The library: a SQLite catalogue (sqlite-utils, migrations, WAL) and a checksummed file store.

Torch-free, so the desktop reads it (read-only) directly. ``schema`` holds the migrations,
``records`` the dataclasses, ``owner`` who trains a run, ``store`` the files, ``catalogue``
the connection and transactions, and one module per repository (tasks, datasets, versions,
runs, evaluations, models) the queries; ``Library`` is composed from them. ``check`` and
``rebuild`` verify the files and recreate a lost catalogue.
"""

from engine.library.catalogue import BUSY_TIMEOUT_MS, FOLDERS
from engine.library.datasets import split_indices
from engine.library.library import Library
from engine.library.records import Dataset, Evaluation, Run, Task, Version
from engine.library.schema import DB_NAME, KINDS, RUN_STATUSES, migrations
from engine.support.clock import utc_now

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "FOLDERS",
    "KINDS",
    "RUN_STATUSES",
    "Dataset",
    "Evaluation",
    "Library",
    "Run",
    "Task",
    "Version",
    "migrations",
    "split_indices",
    "utc_now",
]
