"""``promptbank examples build``: train the shipped example prompts, reproducibly.

Writes ``manifest.json`` and ``prompts/*.safetensors`` next to the example datasets in
``resources/examples``; the desktop installs them into an empty library on first run. Each
task is then measured on its evaluation set three ways (the instruction alone, the
instruction with four training examples, the trained prompt) and the table goes into
``resources/examples/README.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.measures import label, metric_text
from engine.api.training import StepProgress
from engine.commands._common import ProgressLine, emit, load_host
from engine.errors import PromptbankError
from engine.library.examples import examples_dir

if TYPE_CHECKING:
    from engine.library import Library
    from engine.library.records import Version
    from engine.model.host import ModelHost

EXAMPLE_TASKS = [
    {
        "name": "sentiment",
        "kind": "classify",
        "labels": ["positive", "negative"],
        "description": "Is a short review positive or negative?",
        "instruction": "Is the sentiment of this review positive or negative?",
        "data": "sentiment.csv",
        "eval_data": "sentiment_eval.csv",
        "input_column": "text",
        "output_column": "label",
    },
    {
        "name": "support-triage",
        "kind": "classify",
        "labels": ["billing", "technical", "account", "other"],
        "description": "Route a customer message to the team that should answer it.",
        "instruction": "Which team should handle this customer message: billing, technical, "
        "account or other?",
        "data": "support_triage.jsonl",
        "eval_data": "support_triage_eval.jsonl",
    },
    {
        "name": "restaurant-description",
        "kind": "generate",
        "labels": [],
        "description": "Turn restaurant attributes into one fluent sentence.",
        "instruction": "Write one sentence describing the restaurant from these attributes.",
        "data": "restaurant_descriptions.jsonl",
        "eval_data": "restaurant_descriptions_eval.jsonl",
    },
]


def register(sub: argparse._SubParsersAction) -> None:
    examples = sub.add_parser("examples", help="the shipped example library")
    esub = examples.add_subparsers(dest="examples_command", metavar="ACTION", required=True)
    build = esub.add_parser("build", help="train the example prompts on the loaded model")
    build.add_argument("--out", type=Path, default=examples_dir(),
                       help="folder with the example datasets (default: resources/examples)")
    build.add_argument("--steps", type=int, default=120, help="training steps per task")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=cmd_build)


#: How each example is measured, in the table's order: (column, evaluation baseline).
WAYS = (("instruction, zero-shot", "instruction"), ("instruction + 4 examples", "fewshot"),
        ("trained prompt", "none"))
#: The metric each kind of task is judged by in the table (both are shares of rows).
TABLE_METRIC = {"classify": "accuracy", "generate": "exact_match"}
TABLE_BEGIN = "<!-- results:begin (written by `promptbank examples build`; do not edit) -->"
TABLE_END = "<!-- results:end -->"


def cmd_build(args: argparse.Namespace) -> int:
    from engine.library import Library

    host = load_host(args)
    out: Path = args.out
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory(prefix="promptbank-examples-") as scratch:
        library = Library(scratch)
        library.record_model(host.info().to_data())
        for spec in EXAMPLE_TASKS:
            version = _train(args, host, library, spec, out)
            prompt_file = f"prompts/{spec['name']}-v1.safetensors"
            (out / prompt_file).write_bytes(library.read_version_bytes(version))
            manifest.append({**spec, "prompts": [prompt_file], "metrics": version.metrics,
                             "results": _measure(host, library, spec["name"], version.number)})
        library.close()
    (out / "manifest.json").write_text(json.dumps({"model": host.name, "tasks": manifest},
                                                  indent=2) + "\n")
    readme = out / "README.md"
    if readme.is_file():
        write_results_table(readme, manifest, host.name)
    emit(args, {"tasks": [m["name"] for m in manifest], "out": str(out),
                "results": {m["name"]: m["results"] for m in manifest}})
    return 0


def _train(args: argparse.Namespace, host: ModelHost, library: Library, spec: dict,
           out: Path) -> Version:
    """Create the example task from its files and train its prompt; the new version."""
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job

    library.create_task(spec["name"], kind=spec["kind"], labels=spec["labels"] or None,
                        description=spec["description"], instruction=spec["instruction"],
                        data=out / spec["data"], eval_path=out / spec["eval_data"],
                        input_column=spec.get("input_column"),
                        output_column=spec.get("output_column"))
    # No evaluation until the last step: the prompt kept is never chosen on the rows that
    # then judge it in the results table.
    config = TrainConfig(steps=args.steps, seed=args.seed, eval_every=0)
    line = ProgressLine()

    def progress(event) -> None:
        if isinstance(event, StepProgress) and not args.json:
            line(f"{spec['name']}: step {event.step}/{event.total} loss {event.loss:.3f}",
                 event.step / event.total)

    result = run_job(TrainingJob.start(library, host, spec["name"], config), on_event=progress)
    return library.get_version(spec["name"], result.version)


def _measure(host: ModelHost, library: Library, task: str, number: int) -> dict:
    """The task's metrics on its evaluation set for each way in ``WAYS`` (``number``: the
    trained version)."""
    from engine.serving.evaluate import evaluate
    from engine.serving.runtime import Runtime

    runtime = Runtime(host, library)
    results = {}
    for _, baseline in WAYS:
        try:
            found = evaluate(runtime, library, task, baseline=baseline,
                             version=number if baseline == "none" else None)
        except PromptbankError as exc:  # e.g. four examples do not fit a small context
            results[baseline] = {"error": str(exc)}
            continue
        results[baseline] = {"metrics": found.metrics, "n": found.n}
    return results


def results_table(tasks: list[dict], model: str) -> str:
    """The examples' results as a Markdown table: one row per task, one column per way."""
    head = "| task | metric | " + " | ".join(column for column, _ in WAYS) + " |"
    lines = [f"Measured on {model}, each on the task's own evaluation set.", "", head,
             "| --- | --- | " + " | ".join("---" for _ in WAYS) + " |"]
    for task in tasks:
        name = TABLE_METRIC[task["kind"]]
        cells = []
        for _, baseline in WAYS:
            found = task.get("results", {}).get(baseline, {})
            cells.append(metric_text(name, found["metrics"].get(name), found["n"])
                         .removeprefix(f"{label(name)} ") if "metrics" in found
                         else "not measured")
        lines.append(f"| {task['name']} | {label(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results_table(readme: Path, tasks: list[dict], model: str) -> None:
    """Rewrite the table between the markers of the examples' README."""
    head, rest = readme.read_text(encoding="utf-8").split(TABLE_BEGIN, 1)
    readme.write_text(f"{head}{TABLE_BEGIN}\n{results_table(tasks, model)}\n{TABLE_END}"
                      f"{rest.split(TABLE_END, 1)[1]}", encoding="utf-8")
