"""``promptbank examples build``: train the shipped example prompts, reproducibly.

Writes ``manifest.json`` and ``prompts/*.safetensors`` next to the example datasets in
``resources/examples``; the desktop installs them into an empty library on first run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from engine.api.training import StepProgress
from engine.commands._common import ProgressLine, emit, load_host
from engine.library.examples import examples_dir

EXAMPLE_TASKS = [
    {
        "name": "sentiment",
        "kind": "classify",
        "labels": ["positive", "negative"],
        "description": "Is a short review positive or negative?",
        "instruction": "Is the sentiment of this review positive or negative?",
        "data": "sentiment.csv",
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
    },
    {
        "name": "restaurant-description",
        "kind": "generate",
        "labels": [],
        "description": "Turn restaurant attributes into one fluent sentence.",
        "instruction": "Write one sentence describing the restaurant from these attributes.",
        "data": "restaurant_descriptions.jsonl",
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


def cmd_build(args: argparse.Namespace) -> int:
    from engine.library import Library
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job

    host = load_host(args)
    out: Path = args.out
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory(prefix="promptbank-examples-") as scratch:
        library = Library(scratch)
        library.record_model(host.info().to_data())
        for spec in EXAMPLE_TASKS:
            library.create_task(spec["name"], kind=spec["kind"], labels=spec["labels"] or None,
                                description=spec["description"],
                                instruction=spec["instruction"], data=out / spec["data"],
                                input_column=spec.get("input_column"),
                                output_column=spec.get("output_column"))
            config = TrainConfig(steps=args.steps, seed=args.seed, eval_every=args.steps // 3)
            job = TrainingJob.start(library, host, spec["name"], config)

            line = ProgressLine()

            def progress(event, name: str = spec["name"], line: ProgressLine = line) -> None:
                if isinstance(event, StepProgress) and not args.json:
                    line(f"{name}: step {event.step}/{event.total} loss {event.loss:.3f}",
                         event.step / event.total)

            result = run_job(job, on_event=progress)
            version = library.get_version(spec["name"], result.version)
            prompt_file = f"prompts/{spec['name']}-v1.safetensors"
            (out / prompt_file).write_bytes(library.read_version_bytes(version))
            manifest.append({**spec, "prompts": [prompt_file], "metrics": version.metrics})
        library.close()
    (out / "manifest.json").write_text(json.dumps({"tasks": manifest}, indent=2) + "\n")
    emit(args, {"tasks": [m["name"] for m in manifest], "out": str(out),
                "metrics": {m["name"]: m["metrics"] for m in manifest}})
    return 0
