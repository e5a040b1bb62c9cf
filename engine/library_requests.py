"""The worker's ops that change the library. The desktop reads the catalogue read-only and
sends these, so the engine process is the library's one writer (as Anki's collection ops).

``LibraryRequests`` is mixed into ``Worker``: it uses the worker's ``library``, ``send``,
``scheduler``, ``ensure_model`` and ``_invalidate``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.errors import PromptbankError
from engine.paths import resources_dir
from engine.payloads import (
    Activated,
    DatasetAdded,
    ExamplesInstalled,
    Imported,
    LibraryInfo,
    TaskDeleted,
    TaskSaved,
)
from engine.protocol import ProtocolError

EDITABLE_FIELDS = ("kind", "labels", "description", "instruction", "input_template")


def _labels(op: str, value: list | None) -> list[str] | None:
    if value is not None and not all(isinstance(x, str) for x in value):
        raise ProtocolError(f"Argument 'labels' of '{op}' must be a list of strings.")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


class LibraryRequests:
    """Ops that create, edit and delete tasks, add data, activate versions and import."""

    library: Any
    scheduler: Any

    def _refuse_if_training(self, task: str) -> None:
        """A task with a queued or running job here keeps its name and rows until it ends."""
        entry = next((e for e in self.scheduler.jobs if e.trains(task)), None)
        if entry is not None:
            raise PromptbankError(f"The task '{task}' has a {entry.state} training job "
                                  f"({entry.id}).",
                                  hint="Cancel it or wait for it to end, then try again.")

    def op_library_info(self, rid: str, args: dict) -> None:
        library = self.library
        self.send(LibraryInfo(root=str(library.root), schema_version=library.schema_version,
                              tasks=len(library.list_tasks())).event(rid))

    def op_create_task(self, rid: str, args: dict) -> None:
        if args["data"] is None and (args["eval"] or args["input_column"]
                                     or args["output_column"]):
            raise ProtocolError("Arguments 'eval', 'input_column' and 'output_column' of "
                                "'create_task' need 'data'.")
        task = self.library.create_task(
            args["task"], kind=args["kind"], labels=_labels("create_task", args["labels"]),
            description=args["description"], instruction=args["instruction"],
            input_template=args["input_template"], data=_path(args["data"]),
            eval_path=_path(args["eval"]), input_column=args["input_column"],
            output_column=args["output_column"], eval_fraction=args["eval_fraction"],
            seed=args["seed"])
        datasets = self.library.list_datasets(task.name)
        self.send(TaskSaved(task=asdict(task), datasets=[asdict(d) for d in datasets]).event(rid))

    def op_edit_task(self, rid: str, args: dict) -> None:
        name, new_name = args["task"], args["new_name"]
        fields = {k: args[k] for k in EDITABLE_FIELDS if args[k] is not None}
        if not fields and new_name is None:
            raise ProtocolError("'edit_task' needs 'new_name' or a field to change "
                                f"({', '.join(EDITABLE_FIELDS)}).")
        _labels("edit_task", fields.get("labels"))
        self._refuse_if_training(name)
        library = self.library
        with library.transaction():
            task = library.update_task(name, **fields)
            if new_name is not None:
                task = library.rename_task(name, new_name)
        self._invalidate(name)
        self.send(TaskSaved(task=asdict(task)).event(rid))

    def op_delete_task(self, rid: str, args: dict) -> None:
        self._refuse_if_training(args["task"])
        self.library.delete_task(args["task"])
        self._invalidate(args["task"])
        self.send(TaskDeleted(deleted=args["task"]).event(rid))

    def op_activate(self, rid: str, args: dict) -> None:
        version = self.library.set_active(args["task"], args["version"])
        self.send(Activated(task=args["task"], version=asdict(version)).event(rid))

    def op_add_dataset(self, rid: str, args: dict) -> None:
        known = {d.id for d in self.library.list_datasets(args["task"])}
        dataset = self.library.add_dataset(
            args["task"], _path(args["data"]), eval_path=_path(args["eval"]),
            input_column=args["input_column"], output_column=args["output_column"],
            eval_fraction=args["eval_fraction"], seed=args["seed"], role=args["role"])
        self.send(DatasetAdded(dataset=asdict(dataset), added=dataset.id not in known).event(rid))

    def op_import(self, rid: str, args: dict) -> None:
        from engine.interop import ImportTarget, detect_import_format, import_any

        path = _path(args["path"])
        detect_import_format(path)  # a wrong path fails before the model loads
        host = self.ensure_model(rid)
        fmt, report = import_any(self.library, path, ImportTarget.of(host), task=args["task"],
                                 force=args["force"])
        self.send(Imported(format=fmt, **report.to_dict()).event(rid))

    def op_install_examples(self, rid: str, args: dict) -> None:
        from engine.examples import install_examples

        folder = _path(args["folder"]) or resources_dir() / "examples"
        report = install_examples(self.library, folder)
        self.send(ExamplesInstalled(**asdict(report)).event(rid))
