"""First run: fill an empty library with the shipped example tasks from resources/examples
(the desktop asks the engine for this with the ``install_examples`` op).

``resources/examples/manifest.json`` lists the tasks::

    {"tasks": [{"name": "sentiment", "kind": "classify", "labels": ["positive", "negative"],
                "description": "...", "instruction": "...", "data": "sentiment.jsonl",
                "eval_data": "sentiment_eval.csv", "prompts": ["sentiment-v1.safetensors"],
                "metrics": {...}, "results": {...}}]}

``eval_data`` (optional) is the task's evaluation set, in place of a split of ``data``.

Without a manifest every dataset file there becomes a ``generate`` task named after it.
A missing or empty folder installs nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import PromptbankError
from engine.library import Library
from engine.support.paths import resources_dir

log = logging.getLogger("promptbank.examples")
DATA_SUFFIXES = (".jsonl", ".csv", ".tsv")


def examples_dir() -> Path:
    """The folder of the shipped example tasks (``resources/examples``)."""
    return resources_dir() / "examples"


def example_specs(folder: Path) -> list[dict]:
    """The example tasks described in ``folder`` ([] when there are none)."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            tasks = json.loads(manifest.read_text(encoding="utf-8")).get("tasks", [])
        except (OSError, ValueError, AttributeError):
            log.warning("could not read %s; no examples installed", manifest)
            return []
        return [t for t in tasks if isinstance(t, dict) and t.get("name") and t.get("data")]
    if not folder.is_dir():
        return []
    return [{"name": p.stem, "data": p.name} for p in sorted(folder.iterdir())
            if p.suffix.lower() in DATA_SUFFIXES]


@dataclass
class ExamplesReport:
    """Which example tasks were installed, and which were skipped (with the reason)."""

    installed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def install_examples(library: Library, folder: Path) -> ExamplesReport:
    """Add the example tasks (datasets and trained prompts) to an empty library.

    A library that already has tasks is left alone, and an example that fails to install is
    skipped (and leaves nothing behind) without stopping the others.
    """
    report = ExamplesReport()
    if library.list_tasks():
        return report
    for spec in example_specs(folder):
        try:
            install_one(library, folder, spec)
        except (PromptbankError, OSError) as exc:
            log.warning("example %s skipped: %s", spec.get("name"), exc)
            report.skipped.append(f"{spec['name']}: {exc}")
            continue
        report.installed.append(spec["name"])
    return report


def install_one(library: Library, folder: Path, spec: dict) -> None:
    """Create one example task with its dataset and prompt versions (all or nothing)."""
    with library.transaction():
        task = library.create_task(spec["name"], kind=spec.get("kind", "generate"),
                                   labels=spec.get("labels") or None,
                                   description=spec.get("description", ""),
                                   instruction=spec.get("instruction", ""),
                                   data=folder / spec["data"],
                                   eval_path=(folder / spec["eval_data"]
                                              if spec.get("eval_data") else None),
                                   input_column=spec.get("input_column"),
                                   output_column=spec.get("output_column"))
        version = None
        for name in spec.get("prompts", []):
            version = library.add_version(task.name, (folder / name).read_bytes(),
                                          parent_id=version.id if version else None,
                                          metrics=spec.get("metrics"))
        if version is not None:
            library.set_active(task.name, version.number)
