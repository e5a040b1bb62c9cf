"""Library: one library folder's catalogue and files, composed from its repositories."""

from __future__ import annotations

from pathlib import Path

from engine.errors import PromptbankError
from engine.library.datasets import DatasetRepository, DatasetSource
from engine.library.evaluations import EvaluationRepository
from engine.library.models import ModelRepository
from engine.library.records import Task
from engine.library.runs import RunRepository
from engine.library.versions import VersionRepository
from engine.support.fileio import sha256_bytes


class Library(ModelRepository, DatasetRepository, VersionRepository, RunRepository,
              EvaluationRepository):
    """The catalogue and file store of one library folder."""

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
            source = DatasetSource.load(data, input_column, output_column)
            if eval_path is not None:
                eval_source = DatasetSource.load(eval_path, input_column, output_column)
            if kind == "classify" and not labels:
                labels = sorted({e.output for e in source.read.examples})
                _refuse_near_duplicate_labels(labels, source.name)
        self._check_classify_labels(name, kind, labels)
        with self.transaction():
            if self._is_retry(name, kind, labels, description, instruction, input_template,
                              source):
                return self.get_task(name)
            self._warn_case_twin(name)
            task = self._insert_task(name, kind, labels, description, instruction,
                                     input_template)
            if source is not None:
                self._insert_dataset(task, source, eval_source, eval_fraction, seed, "train")
        return self.get_task(name)

    def copy_task(self, name: str, new_name: str, **changes) -> Task:
        """A new task ``new_name`` with ``name``'s fields, ``changes`` applied, and its datasets
        (the same snapshots and splits); ``name`` and its versions stay as they were."""
        task = self.get_task(name)
        fields = {"kind": task.kind, "labels": list(task.labels),
                  "description": task.description, "instruction": task.instruction,
                  "input_template": task.input_template}
        unknown = set(changes) - set(fields)
        if unknown:
            raise PromptbankError(f"A task has no editable field {sorted(unknown)}.",
                                  hint=f"Change one of: {', '.join(sorted(fields))}.")
        fields.update(changes)
        if "universal" in (task.kind, fields["kind"]):
            raise PromptbankError(f"A universal prompt's task '{name}' cannot be copied.",
                                  hint="Make another with `promptbank universal create`.")
        self._check_task_fields(fields["kind"], fields["labels"], new_name)
        self._check_classify_labels(new_name, fields["kind"], fields["labels"])
        with self.transaction():
            self._warn_case_twin(new_name)
            copy = self._insert_task(new_name, **fields)
            self.copy_datasets(name, copy)
        return self.get_task(new_name)

    def _is_retry(self, name: str, kind: str, labels: list[str] | None, description: str,
                  instruction: str, input_template: str | None,
                  source: DatasetSource | None) -> bool:
        """Whether a task called ``name`` already exists exactly as asked (same fields, and the
        same data by content): a create retried after it committed is then a no-op."""
        found = self._rows("SELECT id FROM tasks WHERE name = ?", (name,))
        if not found:
            return False
        task = self.get_task(name)
        same = (task.kind, list(task.labels), task.description, task.instruction,
                task.input_template) == (kind, list(labels or []), description, instruction,
                                         input_template)
        if not same:
            return False
        if source is None:
            return not self.list_datasets(name)
        digest = sha256_bytes(source.data)
        return any(d.sha256 == digest for d in self.list_datasets(name))


def _refuse_near_duplicate_labels(labels: list[str], source: str) -> None:
    """Refuse labels read from data that differ only in case or surrounding spaces: they would
    silently become separate classes ('positive', ' positive', 'Positive')."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.strip().casefold(), []).append(label)
    twins = [group for group in groups.values() if len(group) > 1]
    if twins:
        said = "; ".join(", ".join(repr(label) for label in group) for group in twins)
        raise PromptbankError(
            f"The outputs of {source} hold labels that differ only in case or spaces ({said}); "
            "each would be a class of its own.",
            hint="Write each label one way in the file, or give the labels with --labels if "
            "they really are different classes.")
