"""Handlers of the ops that change the library. The desktop reads the catalogue read-only
and sends these, so the engine process is the library's one writer (as Anki's collection
ops)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from engine.api.library import (
    Activated,
    DatasetAdded,
    ExamplesInstalled,
    Exported,
    Imported,
    LibraryInfo,
    TaskDeleted,
    TaskSaved,
)
from engine.api.wire import ProtocolError
from engine.library.examples import examples_dir
from engine.server.context import Context

EDITABLE_FIELDS = ("kind", "labels", "description", "instruction", "input_template")


def _labels(op: str, value: list | None) -> list[str] | None:
    if value is not None and not all(isinstance(x, str) for x in value):
        raise ProtocolError(f"Argument 'labels' of '{op}' must be a list of strings.")
    return value


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def library_info(ctx: Context, rid: str, args: dict) -> None:
    library = ctx.library
    ctx.send(LibraryInfo(root=str(library.root), schema_version=library.schema_version,
                          tasks=len(library.list_tasks())).event(rid))

def create_task(ctx: Context, rid: str, args: dict) -> None:
    if args["data"] is None and (args["eval"] or args["input_column"]
                                 or args["output_column"]):
        raise ProtocolError("Arguments 'eval', 'input_column' and 'output_column' of "
                            "'create_task' need 'data'.")
    task = ctx.library.create_task(
        args["task"], kind=args["kind"], labels=_labels("create_task", args["labels"]),
        description=args["description"], instruction=args["instruction"],
        input_template=args["input_template"], data=_path(args["data"]),
        eval_path=_path(args["eval"]), input_column=args["input_column"],
        output_column=args["output_column"], eval_fraction=args["eval_fraction"],
        seed=args["seed"])
    datasets = ctx.library.list_datasets(task.name)
    ctx.send(TaskSaved(task=asdict(task), datasets=[asdict(d) for d in datasets]).event(rid))

def edit_task(ctx: Context, rid: str, args: dict) -> None:
    name, new_name = args["task"], args["new_name"]
    fields = {k: args[k] for k in EDITABLE_FIELDS if args[k] is not None}
    if not fields and new_name is None and args["as_new"] is None:
        raise ProtocolError("'edit_task' needs 'new_name', 'as_new' or a field to change "
                            f"({', '.join(EDITABLE_FIELDS)}).")
    _labels("edit_task", fields.get("labels"))
    library = ctx.library
    if args["as_new"] is not None:
        if new_name is not None:
            raise ProtocolError("'edit_task' takes 'new_name' or 'as_new', not both.")
        task = library.copy_task(name, args["as_new"], **fields)
        datasets = library.list_datasets(task.name)
        ctx.send(TaskSaved(task=asdict(task), datasets=[asdict(d) for d in datasets]).event(rid))
        return
    ctx.refuse_if_training(name)
    with library.transaction():
        task = library.update_task(name, **fields)
        if new_name is not None:
            task = library.rename_task(name, new_name)
    ctx.invalidate(name)
    ctx.send(TaskSaved(task=asdict(task)).event(rid))

def delete_task(ctx: Context, rid: str, args: dict) -> None:
    ctx.refuse_if_training(args["task"])
    ctx.library.delete_task(args["task"])
    ctx.invalidate(args["task"])
    ctx.send(TaskDeleted(deleted=args["task"]).event(rid))

def activate(ctx: Context, rid: str, args: dict) -> None:
    version = ctx.library.set_active(args["task"], args["version"])
    ctx.send(Activated(task=args["task"], version=asdict(version)).event(rid))

def add_dataset(ctx: Context, rid: str, args: dict) -> None:
    known = {d.id for d in ctx.library.list_datasets(args["task"])}
    dataset = ctx.library.add_dataset(
        args["task"], _path(args["data"]), eval_path=_path(args["eval"]),
        input_column=args["input_column"], output_column=args["output_column"],
        eval_fraction=args["eval_fraction"], seed=args["seed"], role=args["role"])
    ctx.send(DatasetAdded(dataset=asdict(dataset), added=dataset.id not in known).event(rid))

def import_prompts(ctx: Context, rid: str, args: dict) -> None:
    from engine.interop import ImportTarget, detect_import_format, import_any

    path = _path(args["path"])
    detect_import_format(path)  # a wrong path fails before the model loads
    host = ctx.ensure_model(rid)
    fmt, report = import_any(ctx.library, path, ImportTarget.of(host), task=args["task"],
                             force=args["force"])
    ctx.send(Imported(format=fmt, **report.to_dict()).event(rid))

def install_examples(ctx: Context, rid: str, args: dict) -> None:
    from engine.library.examples import install_examples

    folder = _path(args["folder"]) or examples_dir()
    report = install_examples(ctx.library, folder)
    ctx.send(ExamplesInstalled(**asdict(report)).event(rid))


def export(ctx: Context, rid: str, args: dict) -> None:
    from engine.interop import export_version

    chat = ctx.ensure_model(rid).chat if args["format"] == "vllm" else None
    out = export_version(ctx.library, args["task"], args["format"], Path(args["out"]),
                         version=args["version"], include_eval=args["include_eval"],
                         split=args["split"], chat=chat)
    ctx.send(Exported(task=args["task"], format=args["format"], path=str(out)).event(rid))


HANDLERS = {"library_info": library_info, "create_task": create_task, "edit_task": edit_task,
            "delete_task": delete_task, "activate": activate, "add_dataset": add_dataset,
            "import": import_prompts, "install_examples": install_examples, "export": export}
