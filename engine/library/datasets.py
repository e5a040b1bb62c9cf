"""Datasets: immutable snapshots of data files inside the library, with a fixed-seed split."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PromptbankError
from engine.library.readers import Example, ReadResult, parse_examples, read_dataset_bytes
from engine.library.records import Dataset, Task, dataset_from_row, dumps, loads
from engine.library.store import dataset_file
from engine.library.tasks import TaskRepository
from engine.support.clock import utc_now
from engine.support.fileio import sha256_bytes


@dataclass
class DatasetSource:
    """A dataset file read once: its name, bytes (the snapshot) and parsed examples."""

    name: str
    data: bytes
    read: ReadResult

    @classmethod
    def load(cls, path: Path | str, input_column: str | None,
             output_column: str | None) -> DatasetSource:
        """Read and parse a dataset file (errors name the file and line)."""
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


def _check_split_options(role: str, eval_fraction: float) -> None:
    if role not in ("train", "eval"):
        raise PromptbankError(f"Unknown dataset role '{role}'.", hint="Use train or eval.")
    if not 0 <= eval_fraction < 1:
        raise PromptbankError(f"The eval fraction must be at least 0 and below 1, not "
                              f"{eval_fraction:g}.", hint="Use e.g. 0.1 to hold out 10%.")


class DatasetRepository(TaskRepository):
    """The ``datasets`` table and the snapshot files it names."""

    def add_dataset(self, task: str, path: Path | str, *, eval_path: Path | str | None = None,
                    input_column: str | None = None, output_column: str | None = None,
                    eval_fraction: float = 0.1, seed: int = 0, role: str = "train") -> Dataset:
        """Snapshot a dataset file into the task (all or nothing) with a fixed-seed split.

        ``role="eval"`` keeps every row for evaluation; an ``eval_path`` file replaces the split.
        A file the task already has gives back that dataset unchanged.
        """
        _check_split_options(role, eval_fraction)
        source = DatasetSource.load(path, input_column, output_column)
        eval_source = (DatasetSource.load(eval_path, input_column, output_column)
                       if eval_path is not None else None)
        with self.transaction():
            return self._insert_dataset(self.get_task(task), source, eval_source,
                                        eval_fraction, seed, role)

    def add_dataset_bytes(self, task: str, name: str, data: bytes, *,
                          role: str = "train", eval_fraction: float = 0.1,
                          seed: int = 0) -> Dataset:
        """Like ``add_dataset`` for data held in memory (``name`` picks the format)."""
        source = DatasetSource(name, data, parse_examples(data, name))
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

    def copy_datasets(self, source: str, target: Task) -> None:
        """Give ``target`` every dataset of the task ``source``: the same snapshots and splits,
        checked against ``target``'s labels (inside the caller's transaction)."""
        for ds in self.list_datasets(source):
            columns = (ds.input_column, ds.output_column)
            held = None
            if ds.eval_path:
                name = self.files.path(ds.eval_path).name.split("-eval-", 1)[-1]
                held = self._source(ds.eval_path, ds.eval_sha256 or "", columns, name)
            split = loads(self._row("SELECT split FROM datasets WHERE id = ?", (ds.id,),
                                    "")["split"], [])
            self._insert_dataset(target, self._source(ds.path, ds.sha256, columns, ds.name),
                                 held, 0.0, ds.seed, ds.role, split=split)

    def _insert_dataset(self, task: Task, source: DatasetSource, eval_source: DatasetSource | None,
                        eval_fraction: float, seed: int, role: str,
                        split: list[int] | None = None) -> Dataset:
        """Insert a checked dataset (inside the caller's transaction); ``split``: the held-out
        rows when they are already chosen (a copy), else drawn from ``eval_fraction``."""
        _check_split_options(role, eval_fraction)
        self._check_labels(task, source.read, source.name)
        digest = sha256_bytes(source.data)
        same = self._rows("SELECT id FROM datasets WHERE task_id = ? AND sha256 = ?",
                          (task.id, digest))
        if same:  # the same file again (e.g. continuing on it twice) is the same snapshot
            return self.get_dataset(same[0]["id"])
        rel = dataset_file(task.id, digest, source.name)
        self._write_file(rel, source.data)
        eval_rel = eval_digest = None
        rows = len(source.read.examples)
        if eval_source is not None:
            self._check_labels(task, eval_source.read, eval_source.name)
            eval_digest = sha256_bytes(eval_source.data)
            eval_rel = dataset_file(task.id, eval_digest, eval_source.name, eval_file=True)
            self._write_file(eval_rel, eval_source.data)
            split: list[int] = []
            train_rows, eval_rows = rows, len(eval_source.read.examples)
        elif role == "eval":
            split = list(range(rows))
            train_rows, eval_rows = 0, rows
        else:
            split = split_indices(rows, eval_fraction, seed) if split is None else split
            train_rows, eval_rows = rows - len(split), len(split)
        dataset_id = self.db["datasets"].insert({
            "task_id": task.id, "name": source.name, "path": rel, "sha256": digest,
            "format": source.read.format, "rows": rows, "train_rows": train_rows,
            "eval_rows": eval_rows, "role": role, "eval_path": eval_rel,
            "eval_sha256": eval_digest, "input_column": source.read.input_column,
            "output_column": source.read.output_column, "split": dumps(split), "seed": seed,
            "created": utc_now()}).last_pk
        return self.get_dataset(dataset_id)

    def get_dataset(self, dataset_id: int) -> Dataset:
        """The dataset with this id."""
        return dataset_from_row(self._row("SELECT * FROM datasets WHERE id = ?", (dataset_id,),
                                  f"There is no dataset with id {dataset_id}."))

    def list_datasets(self, task: str) -> list[Dataset]:
        """The task's datasets, oldest first."""
        task_id = self.get_task(task).id
        return [dataset_from_row(r) for r in self._rows(
            "SELECT * FROM datasets WHERE task_id = ? ORDER BY id", (task_id,))]

    def _snapshot(self, rel: str, sha256: str,
                  columns: tuple[str | None, str | None]) -> ReadResult:
        return self._source(rel, sha256, columns).read

    def _source(self, rel: str, sha256: str, columns: tuple[str | None, str | None],
                name: str | None = None) -> DatasetSource:
        """A stored snapshot read back (checked against its hash), as the file ``name``."""
        data = self.files.read(rel, sha256, "The dataset snapshot")
        name = name or self.files.path(rel).name
        return DatasetSource(name, data, parse_examples(data, name, input_column=columns[0],
                                                        output_column=columns[1]))

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
            held = set(loads(row["split"], []))
            examples = self._snapshot(ds.path, ds.sha256, columns).examples
            out += [e for i, e in enumerate(examples) if (i in held) == (split == "eval")]
        return out

