"""Changing the library: tasks, datasets, versions, examples, import and export.

Torch-free: each op is declared beside the payloads it answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.api.payload import Payload
from engine.api.spec import (
    DATA_OPTIONS,
    LABELS_ARG,
    VERSION_ARG,
    Arg,
    OpSpec,
    task_arg,
)


@dataclass
class LibraryInfo(Payload):
    """The answer to ``library_info``."""

    root: str = ""
    schema_version: int = 0
    tasks: int = 0


@dataclass
class TaskSaved(Payload):
    """The answer to ``create_task`` and ``edit_task``: the task's row (and its datasets)."""

    task: dict = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)


@dataclass
class TaskDeleted(Payload):
    """The answer to ``delete_task``."""

    deleted: str = ""


@dataclass
class Activated(Payload):
    """The answer to ``activate``: the task and the version it now serves."""

    task: str = ""
    version: dict = field(default_factory=dict)


@dataclass
class DatasetAdded(Payload):
    """The answer to ``add_dataset``; ``added`` is False when the same file was there."""

    dataset: dict = field(default_factory=dict)
    added: bool = True


@dataclass
class ExamplesInstalled(Payload):
    """The answer to ``install_examples``."""

    installed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class Exported(Payload):
    """The answer to ``export``: where the file (or folder) was written."""

    task: str = ""
    format: str = ""
    path: str = ""


@dataclass
class Imported(Payload):
    """The answer to ``import``: what was added, renamed on a clash, or skipped."""

    format: str = ""
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: What ``export`` writes: the prompt formats, a task's rows for OpenAI fine-tuning and a
#: folder for vLLM's prompt_embeds (the op, the CLI and the writers share this one list).
EXPORT_FORMATS = ("peft", "kobold", "pack", "safetensors", "openai-jsonl", "vllm")

SPECS = (
    OpSpec("library_info", "Open (create or update) the library; its folder, schema version "
           "and task count.", kind="long",
           result=LibraryInfo),
    OpSpec("create_task", "Create a task, with its first dataset if given, in one transaction.",
           (task_arg(), Arg("kind", "str", default="generate", choices=("generate", "classify")),
            LABELS_ARG, Arg("description", "str", default=""),
            Arg("instruction", "str", default=""), Arg("input_template", "str"),
            Arg("data", "str", doc="dataset file", file="in"), *DATA_OPTIONS),
           kind="long",
           result=TaskSaved),
    OpSpec("edit_task", "Rename a task and/or change its fields, in one transaction.",
           (task_arg(), Arg("new_name", "str"),
            Arg("kind", "str", choices=("generate", "classify")), LABELS_ARG,
            Arg("description", "str"), Arg("instruction", "str"), Arg("input_template", "str"),
            Arg("as_new", "str", doc="apply the changes to a new task of this name with the "
                                     "same data; the task and its versions stay as they are")),
           kind="long",
           result=TaskSaved),
    OpSpec("delete_task", "Delete a task with its datasets, versions and runs.", (task_arg(),),
           kind="long",
           result=TaskDeleted),
    OpSpec("activate", "Make a version the one a task serves.",
           (task_arg(), Arg("version", "int", required=True, minimum=1)), kind="long",
           result=Activated),
    OpSpec("add_dataset", "Snapshot another dataset file into a task.",
           (task_arg(), Arg("data", "str", required=True, doc="dataset file", file="in"),
            Arg("role", "str", default="train", choices=("train", "eval")), *DATA_OPTIONS),
           kind="long",
           result=DatasetAdded),
    OpSpec("import", "Import a prompt pack, PEFT folder, KoboldAI zip or prompt file.",
           (Arg("path", "str", required=True, file="in"),
            Arg("task", "str", doc="task for a single prompt (default: its own name)"),
            Arg("force", "bool", default=False,
                doc="accept prompts of another model of the same size")),
           kind="long",
           result=Imported),
    OpSpec("install_examples", "Fill an empty library with the example tasks.",
           (Arg("folder", "str", doc="examples folder (default: the shipped examples)"),),
           kind="long",
           result=ExamplesInstalled),
    OpSpec("export", "Export a version as a PEFT folder, KoboldAI zip, prompt pack, "
           "safetensors file or vLLM prompt_embeds folder, or the task's rows as OpenAI "
           "fine-tuning JSONL.",
           (task_arg(), VERSION_ARG,
            Arg("format", "str", required=True,
                choices=EXPORT_FORMATS),
            Arg("out", "str", required=True, doc="output path", file="out"),
            Arg("include_eval", "bool", default=True, doc="packs: add the eval data"),
            Arg("split", "str", default="train", choices=("train", "eval"),
                doc="openai-jsonl: which rows")),
           result=Exported),
)
PROGRESS = ()
