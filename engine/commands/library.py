"""``promptbank task|data|versions|activate|export|import``: the library from the command line.

Only ``import`` of prompts loads the model (to check that they fit it); everything else
works on the catalogue alone.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.library import EXPORT_FORMATS
from engine.api.measures import headline_metric
from engine.commands._common import emit, load_host
from engine.errors import PromptbankError

if TYPE_CHECKING:
    from engine.library import Library, Task, Version


def open_library(args: argparse.Namespace) -> Library:
    """The library of the global --library option (sqlite-utils is imported only when needed)."""
    from engine.library import Library

    return Library(args.library)


def register(sub: argparse._SubParsersAction) -> None:
    _register_task(sub)
    data = sub.add_parser("data", help="datasets of a task")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    add = dsub.add_parser("add", help="add a dataset file to a task (an immutable snapshot)")
    add.add_argument("name")
    add.add_argument("file", type=Path)
    add.add_argument("--role", choices=("train", "eval"), default="train",
                     help="eval: keep every row for evaluation")
    _data_options(add)
    add.set_defaults(func=cmd_data_add)

    versions = sub.add_parser("versions", help="list a task's prompt versions")
    versions.add_argument("name")
    versions.set_defaults(func=cmd_versions)
    activate = sub.add_parser("activate", help="make a version the one a task uses")
    activate.add_argument("name")
    activate.add_argument("version", type=int)
    activate.set_defaults(func=cmd_activate)

    export = sub.add_parser("export", help="export a task's prompt (peft, kobold, pack, "
                            "safetensors, vllm) or its rows for OpenAI fine-tuning "
                            "(openai-jsonl)")
    export.add_argument("name")
    export.add_argument("--version", type=int, default=None,
                        help="version number (default: the active one; pack: all versions)")
    export.add_argument("--format", required=True,
                        choices=EXPORT_FORMATS)
    export.add_argument("--split", choices=("train", "eval"), default="train",
                        help="openai-jsonl: the training or the held-out rows")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--no-data", action="store_true", help="pack: leave out the eval data")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="import a pack, PEFT folder, KoboldAI zip or prompt file")
    imp.add_argument("path", type=Path)
    imp.add_argument("--task", default=None, help="task for a single prompt (default: its name)")
    imp.add_argument("--force", action="store_true",
                     help="accept prompts trained on (or PEFT adapters naming) another "
                          "model of the same size")
    imp.set_defaults(func=cmd_import)


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval", type=Path, default=None, dest="eval_file",
                        help="a separate evaluation file (default: hold out --eval-fraction)")
    parser.add_argument("--input-column", default=None, help="CSV/TSV column or JSONL key")
    parser.add_argument("--output-column", default=None,
                        help="CSV/TSV column or JSONL key (the label for classify)")
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/eval split")


def _register_task(sub: argparse._SubParsersAction) -> None:
    task = sub.add_parser("task", help="create, list, show, edit, rename and delete tasks")
    tsub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    create = tsub.add_parser("create", help="create a task from a dataset file")
    create.add_argument("name")
    create.add_argument("--data", type=Path, default=None, help="JSONL, CSV or TSV file")
    create.add_argument("--kind", choices=("generate", "classify"), default="generate")
    _task_fields(create)
    _data_options(create)
    create.set_defaults(func=cmd_task_create)
    tsub.add_parser("list", help="all tasks").set_defaults(func=cmd_task_list)
    show = tsub.add_parser("show", help="a task with its datasets and versions")
    show.add_argument("name")
    show.set_defaults(func=cmd_task_show)
    edit = tsub.add_parser("edit", help="change a task's fields")
    edit.add_argument("name")
    edit.add_argument("--kind", choices=("generate", "classify"), default=None)
    _task_fields(edit)
    edit.add_argument("--as-new", default=None, metavar="NEW_NAME",
                      help="make the changes in a new task with the same data, keeping this "
                           "one and its versions as they are (use it when the labels or kind "
                           "change: the versions were trained for the old ones)")
    edit.set_defaults(func=cmd_task_edit)
    rename = tsub.add_parser("rename", help="rename a task")
    rename.add_argument("name")
    rename.add_argument("new_name")
    rename.set_defaults(func=cmd_task_rename)
    delete = tsub.add_parser("delete", help="delete a task, its versions, data and runs")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")
    delete.set_defaults(func=cmd_task_delete)


def _task_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", default=None, help="comma-separated labels (classify)")
    parser.add_argument("--instruction", default=None, help="the hard prompt a human would write")
    parser.add_argument("--description", default=None)
    parser.add_argument("--input-template", default=None,
                        help="how an input is shown to the model (default: its chat template)")


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [label.strip() for label in text.split(",") if label.strip()]


def _task_dict(lib: Library, task: Task) -> dict:
    versions = lib.list_versions(task.name)
    active = next((v.number for v in versions if v.id == task.active_version_id), None)
    return {**asdict(task), "versions": len(versions), "active_version": active}


def _version_dict(lib: Library, version: Version, active_id: int | None) -> dict:
    numbers = {v.id: v.number for v in lib.list_versions(lib.get_task_by_id(version.task_id).name)}
    return {**asdict(version), "parent": numbers.get(version.parent_id or -1),
            "active": version.id == active_id}


def cmd_task_create(args: argparse.Namespace) -> int:
    lib = open_library(args)
    if args.data is None and (args.eval_file or args.input_column or args.output_column):
        raise PromptbankError("--eval and the column options need --data.",
                              hint="Give the dataset file with --data.")
    task = lib.create_task(
        args.name, kind=args.kind, labels=_labels(args.labels),
        description=args.description or "", instruction=args.instruction or "",
        input_template=args.input_template, data=args.data, eval_path=args.eval_file,
        input_column=args.input_column, output_column=args.output_column,
        eval_fraction=args.eval_fraction, seed=args.seed)
    datasets = lib.list_datasets(task.name)
    payload = {**_task_dict(lib, task), "datasets": [asdict(d) for d in datasets]}
    text = f"Created task '{task.name}' ({task.kind})."
    if datasets:
        d = datasets[0]
        text += (f" Read {d.rows} examples from {d.name} (format: {d.format}); "
                 f"{d.train_rows} for training, {d.eval_rows} for evaluation.")
    if task.labels:
        text += f" Labels: {', '.join(task.labels)}."
    emit(args, payload, text)
    return 0


def cmd_task_list(args: argparse.Namespace) -> int:
    lib = open_library(args)
    tasks = [_task_dict(lib, t) for t in lib.list_tasks()]
    lines = [f"{'name':<24} {'kind':<9} {'versions':>8} {'active':>6}"]
    lines += [f"{t['name']:<24} {t['kind']:<9} {t['versions']:>8} {t['active_version'] or '-':>6}"
              for t in tasks]
    emit(args, {"tasks": tasks}, "\n".join(lines) if tasks else "No tasks yet.")
    return 0


def cmd_task_show(args: argparse.Namespace) -> int:
    lib = open_library(args)
    task = lib.get_task(args.name)
    datasets = lib.list_datasets(task.name)
    versions = [_version_dict(lib, v, task.active_version_id) for v in
                lib.list_versions(task.name)]
    payload = {**_task_dict(lib, task), "datasets": [asdict(d) for d in datasets],
               "version_list": versions}
    lines = [f"{task.name} ({task.kind})"]
    if task.labels:
        lines.append(f"labels: {', '.join(task.labels)}")
    for key in ("description", "instruction", "input_template"):
        if getattr(task, key):
            lines.append(f"{key}: {getattr(task, key)}")
    lines += [f"dataset {d.id}: {d.name} ({d.format}, {d.train_rows} train / {d.eval_rows} eval)"
              for d in datasets]
    lines += [f"version {v['number']}{' (active)' if v['active'] else ''}: {v['method']} x "
              f"{v['length']}, parent {v['parent'] or '-'}" for v in versions]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_task_edit(args: argparse.Namespace) -> int:
    lib = open_library(args)
    fields = {key: getattr(args, key) for key in ("kind", "description", "instruction",
                                                  "input_template")
              if getattr(args, key) is not None}
    if args.labels is not None:
        fields["labels"] = _labels(args.labels)
    if args.as_new is not None:
        task = lib.copy_task(args.name, args.as_new, **fields)
        emit(args, _task_dict(lib, task), f"Made task '{task.name}' from '{args.name}' with "
             f"its data; '{args.name}' and its versions are unchanged.")
        return 0
    task = lib.update_task(args.name, **fields)
    emit(args, _task_dict(lib, task), f"Updated task '{task.name}'.")
    return 0


def cmd_task_rename(args: argparse.Namespace) -> int:
    lib = open_library(args)
    task = lib.rename_task(args.name, args.new_name)
    emit(args, _task_dict(lib, task), f"Renamed '{args.name}' to '{task.name}'.")
    return 0


def cmd_task_delete(args: argparse.Namespace) -> int:
    lib = open_library(args)
    task = lib.get_task(args.name)
    if not args.yes:
        count = len(lib.list_versions(task.name))
        raise PromptbankError(
            f"Deleting '{task.name}' removes its {count} prompt version(s), datasets and runs.",
            hint="Add --yes to confirm.")
    lib.delete_task(task.name)
    emit(args, {"deleted": task.name}, f"Deleted task '{task.name}'.")
    return 0


def cmd_data_add(args: argparse.Namespace) -> int:
    lib = open_library(args)
    known = {d.id for d in lib.list_datasets(args.name)}
    ds = lib.add_dataset(args.name, args.file, eval_path=args.eval_file,
                         input_column=args.input_column, output_column=args.output_column,
                         eval_fraction=args.eval_fraction, seed=args.seed, role=args.role)
    if ds.id in known:
        emit(args, {**asdict(ds), "added": False},
             f"'{args.name}' already has this file (as {ds.name}); nothing was added.")
        return 0
    emit(args, {**asdict(ds), "added": True}, f"Added {ds.rows} examples from {ds.name} to "
         f"'{args.name}' (format: {ds.format}); {ds.train_rows} for training, "
         f"{ds.eval_rows} for evaluation.")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    lib = open_library(args)
    task = lib.get_task(args.name)
    versions = [_version_dict(lib, v, task.active_version_id)
                for v in lib.list_versions(task.name)]
    lines = [f"{'v':>3} {'method':<7} {'length':>6} {'parent':>6}  created                    "
             "judged by"]
    lines += [f"{v['number']:>3}{'*' if v['active'] else ' '}{v['method']:<7} {v['length']:>6} "
              f"{v['parent'] or '-':>6}  {v['created']:<26} "
              + (headline_metric(v["metrics"]) or "not measured") for v in versions]
    text = "\n".join(lines) if versions else f"'{task.name}' has no versions yet."
    emit(args, {"task": task.name, "versions": versions}, text)
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    lib = open_library(args)
    version = lib.set_active(args.name, args.version)
    emit(args, asdict(version), f"'{args.name}' now uses version {version.number}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.interop import export_version

    lib = open_library(args)
    # vLLM's input is built from the model's chat format: only that export loads the model.
    chat = load_host(args).chat if args.format == "vllm" else None
    out = export_version(lib, args.name, args.format, args.out, version=args.version,
                         include_eval=not args.no_data, split=args.split, chat=chat)
    what = f"{args.split} rows" if args.format == "openai-jsonl" else "prompt"
    emit(args, {"task": args.name, "format": args.format, "path": str(out)},
         f"Exported '{args.name}' ({what}) as {args.format} to {out}.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from engine.interop import ImportTarget, detect_import_format, import_any

    lib = open_library(args)
    detect_import_format(args.path)  # a wrong path fails before the model loads
    host = load_host(args)
    # One commit for the prompts and the model they were imported for: a failure of either
    # changes nothing, so "nothing was changed" is always true and a retry adds no copy.
    with lib.transaction():
        fmt, report = import_any(lib, args.path, ImportTarget.of(host), task=args.task,
                                 force=args.force)
        lib.record_model(host.info().to_data())
    lines = [f"Imported {args.path} ({fmt})."]
    lines += [f"added: {item}" for item in report.added]
    lines += [f"renamed: {item}" for item in report.renamed]
    lines += [f"skipped: {item}" for item in report.skipped]
    lines += [f"note: {item}" for item in report.notes]
    emit(args, {"format": fmt, **report.to_dict()}, "\n".join(lines))
    return 0
