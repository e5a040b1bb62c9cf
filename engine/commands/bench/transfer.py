"""``promptbank bench transfer``: does starting a new task from the library pay?

Leave one out on the shipped benchmark tasks (SST-2, AG News, SMS spam: accuracy; E2E: eval
loss, lower is better) from ``../shared/data`` (skipped cleanly when absent). Every task first
gets its own prompt (trained from its text). Then each task in turn is the new one, and is
trained from each start made of the other tasks only:

- ``text``: its instruction (the baseline);
- ``universal``: a universal prompt trained on the others' rows (``promptbank universal``);
- ``shared``: the shared part of a multitask prompt (MPT) trained on the others
  (``engine.training.shared``);
- ``suggested``: the other task prompt the short probe ranks best (``suggest-init``, SPoT's
  choice of one source by how the new task takes to it);
- ``mix``: its text start mixed with the others' prompts, the weights trained (ATTEMPT
  without its input dependence, ``--init mix``).

Each step budget is its own run and schedule, evaluated once at its end on the same held-out
rows; few-shot runs train on the first N training rows only and are scored on those rows too.
The probe's own pick among the others' prompts, their mix and the text init (what the wizard
would preselect) is reported with its head start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.commands.bench.multitask import bench_library, task_options
from engine.commands.bench.quality import QualityTask, load_task, write_jsonl

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost
    from engine.training.config import TrainConfig

STARTS = ("text", "universal", "shared", "suggested", "mix")
#: The step budget within which a library start should reach text init's longest-run metric.
GOAL_STEPS = 100


def better(metric_name: str, a: float, b: float) -> bool:
    """Whether ``a`` is at least as good as ``b``."""
    return a <= b if metric_name == "eval_loss" else a >= b


def _log(text: str) -> None:
    print(f"transfer: {text}", file=sys.stderr)


def _train(lib: Library, host: ModelHost, task: str, config: TrainConfig):
    from engine.training.job import TrainingJob, run_job

    return run_job(TrainingJob.start(lib, host, task, config))


def _shared(lib: Library, host: ModelHost, name: str, others: list[str],
            config: TrainConfig) -> str:
    """A universal task holding the shared part of an MPT prompt trained on ``others``."""
    from engine.api.train_settings import UNIVERSAL_INSTRUCTION
    from engine.library.records import Task
    from engine.methods import get_method
    from engine.prompts.initial import initial_tensor
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
    from engine.training.batches import encode
    from engine.training.shared import SharedSource, train_shared

    sources = []
    for other in others:
        record = lib.get_task(other)
        rows = encode(host, lib.examples(other, "train"), template=record.input_template,
                      max_length=config.max_length)
        sources.append(SharedSource(rows, host.chat.head(template=record.input_template)))
    draft = Task(0, name, "universal", [], "", UNIVERSAL_INSTRUCTION, None, None, "")
    init = initial_tensor(host, config.method, config.length, "text", draft, seed=config.seed)
    tensor = train_shared(host, get_method(config.method), init, sources, config)
    lib.create_universal_task(name, description=f"MPT shared prompt from {', '.join(others)}.",
                              instruction=UNIVERSAL_INSTRUCTION)
    prompt = SoftPrompt(method=config.method, tensor=tensor, geometry=ModelGeometry.of(host),
                        task=name, init="text")
    version = lib.add_version(name, prompt.to_bytes(), metrics={"sources": others})
    lib.set_active(name, version.number)
    return f"universal:{name}"


def probe(lib: Library, host: ModelHost, held: str, others: list[str],
          config: TrainConfig) -> dict:
    """The short probe on ``held``'s rows over the others' prompts, their mix and the text
    init, as the wizard runs it: its pick and head start, and the best of the task prompts
    alone (``suggested``; probing together equals probing each alone)."""
    from engine.training.probe import candidates, rank_starts

    record = lib.get_task(held)
    found = candidates(lib, host, config.method, config.length, exclude=held, names=others,
                       instruction=record.instruction)
    scores = rank_starts(host, lib.examples(held, "train"), found,
                         template=record.input_template, config=config)
    return {"pick": scores[0].init, "steps_saved": scores[0].steps_saved,
            "head_start": scores[0].head_start,
            "suggested": next(s.init for s in scores if s.source == "task")}


def start_inits(lib: Library, host: ModelHost, held: str, others: list[str], starts: list[str],
                config: TrainConfig, source_steps: int, suggested: str) -> dict[str, str]:
    """Each start's ``--init`` for the held-out task, made from ``others`` only."""
    from engine.training.job import run_job
    from engine.training.universal import UniversalJob

    made = {"text": "text", "mix": "mix:" + ",".join(others), "suggested": suggested}
    uni = replace(config, steps=source_steps)
    if "universal" in starts:
        name = f"universal-without-{held}"
        run_job(UniversalJob.create(lib, host, name, others, replace(uni)))
        made["universal"] = f"universal:{name}"
    if "shared" in starts:
        made["shared"] = _shared(lib, host, f"shared-without-{held}", others, uni)
    return {s: made[s] for s in starts}


def _few_shot(host: ModelHost, lib: Library, task: QualityTask, rows: int, key: str, init: str,
              given: dict, folder: Path) -> dict:
    """Train ``task`` on its first ``rows`` training examples only (few-shot mode) from
    ``init``; its metric on the held-out rows."""
    from engine.library.readers import Example
    from engine.training.batches import EvalSet
    from engine.training.evaluation import Evaluator
    from engine.training.job import TrainingJob, run_job
    from engine.training.settings import settings_for

    name = f"{task.name}-{rows}-{key}"
    lib.create_task(name, kind="classify" if task.labels else "generate",
                    labels=task.labels or None, instruction=task.instruction)
    lib.add_dataset(name, write_jsonl(folder / f"{name}.jsonl", task.train[:rows]),
                    eval_fraction=0.0)
    job = TrainingJob.start(lib, host, name, settings_for(lib, name, {**given, "init": init}))
    result = run_job(job)
    evaluator = Evaluator(host, lib.get_task(name), max_length=job.config.max_length)
    held = EvalSet(name, [Example(i, o) for i, o in task.eval])
    measured = evaluator(job.config.method, job.final_tensor().to(host.device), held)
    return {"metric": measured["metric"], "steps": result.steps, "mode": job.config.mode}


def held_out(host: ModelHost, lib: Library, held: QualityTask, tasks: list[QualityTask],
             config: TrainConfig, args, folder: Path) -> dict:
    """One task as the new one: its curves from every start, and its few-shot runs."""
    others = [t.name for t in tasks if t is not held]
    probed = probe(lib, host, held.name, others, config)
    inits = start_inits(lib, host, held.name, others, args.starts, config, args.source_steps,
                        probed.pop("suggested"))
    _log(f"{held.name}: starts {inits}; the probe picks {probed}")
    row: dict = {"held_out": held.name, "sources": others, "inits": inits, "probe": probed,
                 "curves": {s: {} for s in inits}}
    for start, init in inits.items():
        for steps in args.points if start == "text" else args.start_points:
            result = _train(lib, host, held.name, replace(config, steps=steps, init=init))
            row["metric_name"] = result.metric_name
            row["curves"][start][str(steps)] = result.best_metric
            _log(f"{held.name} from {start} @ {steps}: {result.best_metric:.4f}")
    target = row["curves"]["text"][str(max(args.points))]
    row["reaches_text_best_at"] = {
        s: next((int(k) for k, v in curve.items() if better(row["metric_name"], v, target)),
                None) for s, curve in row["curves"].items() if s != "text"}
    given = {k: v for k, v in config.to_dict().items()
             if k in ("method", "length", "lr", "batch_size", "seed", "eval_size")}
    if args.few_shot_steps:
        given["steps"] = args.few_shot_steps
    row["few_shot"] = {str(n): {s: _few_shot(host, lib, held, n, s, init, given, folder)
                                for s, init in inits.items()} for n in args.few_shot_rows}
    _log(f"{held.name} few-shot {row['few_shot']}")
    return row


def summary(rows: list[dict], starts: list[str]) -> dict:
    """Per start: the held-out tasks on which it reached text init's longest-run metric
    within ``GOAL_STEPS``, and its mean few-shot gain over text init in points (accuracy
    tasks only) at each few-shot size."""
    out = {}
    for start in (s for s in starts if s != "text"):
        reached = [r["held_out"] for r in rows
                   if (r["reaches_text_best_at"].get(start) or GOAL_STEPS + 1) <= GOAL_STEPS]
        gains: dict[str, float] = {}
        for n in rows[0]["few_shot"] if rows else ():
            diffs = [100 * (r["few_shot"][n][start]["metric"] - r["few_shot"][n]["text"]["metric"])
                     for r in rows if r["metric_name"] == "accuracy"]
            if diffs:
                gains[n] = round(sum(diffs) / len(diffs), 2)
        out[start] = {"reached_within_goal": reached, "few_shot_gain_points": gains}
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="a new task started from the library's prompts vs "
                       "from its text, leave one out")
    task_options(p)
    p.add_argument("--starts", default=",".join(STARTS),
                   help=f"comma list of {', '.join(STARTS)} (default: all)")
    p.add_argument("--points", default="25,50,100,300",
                   help="step budgets of the text-init runs (the last is the target)")
    p.add_argument("--start-points", default="25,50,100",
                   help="step budgets of the runs from library starts")
    p.add_argument("--source-steps", type=int, default=300,
                   help="steps of each task's own prompt and of the universal and shared "
                        "prompts (default 300)")
    p.add_argument("--train-rows", type=int, default=4000)
    p.add_argument("--eval-rows", type=int, default=300)
    p.add_argument("--few-shot-rows", default="16,32,64", help="few-shot sizes")
    p.add_argument("--few-shot-steps", type=int, default=None,
                   help="at most this many few-shot steps (default: few-shot mode's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--method", default=None)
    p.add_argument("--length", type=int, default=None)
    p.set_defaults(func=cmd_transfer)


def _ints(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def cmd_transfer(args: argparse.Namespace) -> int:
    from engine.commands._common import emit, load_host
    from engine.errors import PromptbankError
    from engine.training.config import TrainConfig

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        emit(args, {"skipped": f"no benchmark data at {data_dir}"})
        return 0
    args.starts = ["text", *(s.strip() for s in args.starts.split(",")
                             if s.strip() and s.strip() != "text")]
    unknown = [s for s in args.starts if s not in STARTS]
    if unknown:
        raise PromptbankError(f"Unknown start '{unknown[0]}'.", hint=f"Use {', '.join(STARTS)}.")
    args.points, args.start_points = _ints(args.points), _ints(args.start_points)
    args.few_shot_rows = _ints(args.few_shot_rows)
    host = load_host(args)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    tasks = [load_task(name, data_dir, args.train_rows, args.eval_rows) for name in names]
    overrides = {k: getattr(args, k) for k in ("method", "length", "batch_size")
                 if getattr(args, k) is not None}
    config = TrainConfig(**{**overrides, "eval_every": 0, "checkpoint_every": 0,
                            "eval_size": args.eval_rows})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lib = bench_library(folder, tasks)
        own = {t.name: _train(lib, host, t.name, replace(config, steps=args.source_steps,
                                                          init="text")).best_metric
               for t in tasks}
        _log(f"own prompts {own}")
        rows = [held_out(host, lib, held, tasks, config, args, folder) for held in tasks]
    emit(args, {"model": host.name, "device": str(host.device), "tasks": names,
                "method": config.method, "length": config.length,
                "batch_size": config.batch_size, "train_rows": args.train_rows,
                "eval_rows": args.eval_rows, "source_steps": args.source_steps,
                "own_prompts": own, "held_out": rows, "summary": summary(rows, args.starts)})
    return 0
