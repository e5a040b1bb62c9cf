"""The catalogue's records as dataclasses, and their conversion from table rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.library.owner import RunOwner


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
    owner: RunOwner | None = None
    joint_id: int | None = None  # the first run of the joint job this run belongs to


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


def loads(text: str | None, default: Any) -> Any:
    """A JSON column's value (``default`` when empty)."""
    return json.loads(text) if text else default


def dumps(value: Any) -> str:
    """A value as a JSON column (sorted keys, so equal values store equal text)."""
    return json.dumps(value, sort_keys=True, default=str)


def task_from_row(row: dict) -> Task:
    """A Task from its ``tasks`` row."""
    return Task(row["id"], row["name"], row["kind"], loads(row["labels"], []),
                row["description"], row["instruction"], row["input_template"],
                row["active_version_id"], row["created"])


def dataset_from_row(row: dict) -> Dataset:
    """A Dataset from its ``datasets`` row."""
    return Dataset(**{k: row[k] for k in Dataset.__dataclass_fields__})


def version_from_row(row: dict) -> Version:
    """A Version from its ``prompts`` row."""
    values = {k: row[k] for k in Version.__dataclass_fields__}
    values["metrics"] = loads(row["metrics"], {})
    return Version(**values)


def run_from_row(row: dict) -> Run:
    """A Run from its ``runs`` row."""
    values = {k: row[k] for k in Run.__dataclass_fields__ if k != "owner"}
    values["config"] = loads(row["config"], {})
    values["summary"] = loads(row["summary"], {})
    owner = None
    if row["owner_pid"] is not None:
        owner = RunOwner(row["owner_pid"], row["owner_host"], row["owner_since"],
                         row["owner_token"])
    return Run(**values, owner=owner)


def evaluation_from_row(row: dict) -> Evaluation:
    """An Evaluation from its ``evaluations`` row."""
    values = {k: row[k] for k in Evaluation.__dataclass_fields__}
    values["metrics"] = loads(row["metrics"], {})
    return Evaluation(**values)
