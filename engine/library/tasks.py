"""Tasks: create, read, edit, rename and delete (a deletion removes rows first, then files)."""

from __future__ import annotations

import logging
import shutil
from typing import Any

from engine.errors import PromptbankError
from engine.library.catalogue import Catalogue
from engine.library.owner import RunOwner
from engine.library.records import Task, dumps, run_from_row, task_from_row
from engine.library.schema import KINDS
from engine.support.clock import utc_now
from engine.support.untrusted import check_label, check_name

log = logging.getLogger("promptbank.library")


class TaskRepository(Catalogue):
    """The ``tasks`` table."""

    def _task_row(self, name: str) -> dict:
        return self._row("SELECT * FROM tasks WHERE name = ?", (name,),
                         f"There is no task named '{name}'.",
                         "See `promptbank task list` for the tasks in this library.")

    @staticmethod
    def _check_task_fields(kind: str, labels: list[str] | None, name: str | None = None) -> None:
        if name is not None and not name.strip():
            raise PromptbankError("A task name cannot be empty.", hint="Give the task a name.")
        if name is not None:
            check_name(name, "task name")
        if name is not None and (name != name.strip() or "/" in name):
            raise PromptbankError(f"The task name '{name}' has leading or trailing spaces or a "
                                  "slash.", hint="Choose a plainer name.")
        if kind not in KINDS:
            raise PromptbankError(f"Unknown task kind '{kind}'.",
                                  hint="Use 'generate' or 'classify'.")
        if labels is not None and (len(set(labels)) != len(labels)
                                   or any(not str(x).strip() for x in labels)):
            raise PromptbankError("The labels must be distinct and non-empty.",
                                  hint="List each label once, e.g. --labels positive,negative.")
        for label in labels or []:
            check_label(str(label))

    @staticmethod
    def _check_classify_labels(name: str, kind: str, labels: list[str] | None) -> None:
        if kind == "classify" and len(labels or []) < 2:
            raise PromptbankError(f"The classify task '{name}' needs at least two labels.",
                                  hint="Give them with --labels a,b or in the data's outputs.")

    def _insert_task(self, name: str, kind: str, labels: list[str] | None, description: str,
                     instruction: str, input_template: str | None) -> Task:
        """Insert a checked task row (inside the caller's transaction)."""
        if self._rows("SELECT id FROM tasks WHERE name = ?", (name,)):
            raise PromptbankError(f"A task named '{name}' already exists.",
                                  hint="Choose another name or add data to that task.")
        self.db["tasks"].insert({
            "name": name, "kind": kind, "labels": dumps(list(labels or [])),
            "description": description, "instruction": instruction,
            "input_template": input_template, "active_version_id": None,
            "created": utc_now()})
        return self.get_task(name)

    def create_universal_task(self, name: str, *, description: str,
                              instruction: str) -> Task:
        """A task of kind ``universal``: a prompt trained on the rows of other tasks."""
        self._check_task_fields("generate", None, name)
        with self.transaction():
            self._insert_task(name, "universal", None, description, instruction, None)
        return self.get_task(name)

    def get_task(self, name: str) -> Task:
        """The task called ``name``; a PromptbankError if there is none."""
        return task_from_row(self._task_row(name))

    def get_task_by_id(self, task_id: int) -> Task:
        """The task with this id."""
        return task_from_row(self._row("SELECT * FROM tasks WHERE id = ?", (task_id,),
                               f"There is no task with id {task_id}."))

    def list_tasks(self) -> list[Task]:
        """Every task, by name."""
        return [task_from_row(r) for r in
                self._rows("SELECT * FROM tasks ORDER BY name COLLATE NOCASE")]

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
        if "universal" in (task.kind, kind) and kind != task.kind:
            raise PromptbankError(f"The kind of '{name}' cannot change to or from universal.",
                                  hint="Make a universal prompt with `promptbank universal "
                                  "create`, or a new task with `promptbank task create`.")
        if kind != "universal":
            self._check_task_fields(kind, list(labels) if labels is not None else None)
        self._check_classify_labels(name, kind, labels)
        if "labels" in fields:
            fields["labels"] = dumps(list(labels or []))
        if fields:
            with self.transaction():
                self.db["tasks"].update(task.id, fields)
        return self.get_task(name)

    def _warn_case_twin(self, name: str, but: int | None = None) -> None:
        """Log a warning when another task's name differs from ``name`` only in case."""
        twins = [row["name"] for row in self._rows(
            "SELECT id, name FROM tasks WHERE name = ? COLLATE NOCASE AND name != ?",
            (name, name)) if row["id"] != but]
        if twins:
            log.warning("The task name '%s' differs from '%s' only in case; both are kept "
                        "apart, but they are easy to mix up.", name, twins[0])

    def rename_task(self, old: str, new: str) -> Task:
        """Rename a task (its files are kept under the task's id, so none move)."""
        self._check_task_fields("generate", None, new)
        with self.transaction():
            task = self.get_task(old)
            self._refuse_if_trained_elsewhere(task, "renamed")
            if old != new and self._rows("SELECT id FROM tasks WHERE name = ?", (new,)):
                raise PromptbankError(f"A task named '{new}' already exists.",
                                      hint="Choose another name.")
            self._warn_case_twin(new, but=task.id)
            self.db["tasks"].update(task.id, {"name": new})
        return self.get_task(new)

    def _refuse_if_trained_elsewhere(self, task: Task, change: str) -> None:
        """Refuse to rename or delete a task while another live process trains it (its
        trainer would fail at the end and lose the run)."""
        me = RunOwner.this_process()
        for row in self._rows("SELECT * FROM runs WHERE task_id = ? AND owner_pid IS NOT NULL",
                              (task.id,)):
            run = run_from_row(row)
            if run.owner is not None and run.owner.blocks(me):
                raise PromptbankError(
                    f"The task '{task.name}' cannot be {change} while {run.owner.describe()} "
                    f"trains it (run {run.id}).",
                    hint="Wait for the run to end or cancel it there, then try again.")

    def delete_task(self, name: str) -> None:
        """Delete a task's rows in one transaction, and only then its files."""
        with self.transaction():
            task = self.get_task(name)
            self._refuse_if_trained_elsewhere(task, "deleted")
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
