"""``promptbank bench multitask``: joint training vs one task after another (starts from the
library for a held-out task: ``bench transfer``).

On the shipped benchmark tasks (SST-2, AG News, SMS spam: accuracy; E2E: eval loss, lower is
better) from ``../shared/data`` (skipped cleanly when absent):

- **joint**: the tasks trained one after another vs in one joint job, the same steps per task
  and seeds; the wall-time ratio (joint / sequential, training steps only and with the final
  evaluations) and each task's metric both ways, with the largest step-loss difference (the
  two are the same computation, so it is float rounding).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.payload import Payload
from engine.api.training import StepProgress
from engine.commands.bench.quality import DATA_DIR, LOADERS, QualityTask, load_task, write_jsonl

if TYPE_CHECKING:
    from engine.model.host import ModelHost

DEFAULT_TASKS = "sst2,agnews,sms_spam,e2e"


def bench_library(folder: Path, tasks: list[QualityTask]):
    """A library holding the benchmark tasks, each with its held-out rows as a separate
    evaluation file."""
    from engine.library import Library

    lib = Library(folder)
    for task in tasks:
        lib.create_task(task.name, kind="classify" if task.labels else "generate",
                        labels=task.labels or None, instruction=task.instruction)
        lib.add_dataset(task.name, write_jsonl(folder / f"{task.name}-train.jsonl", task.train),
                        eval_path=write_jsonl(folder / f"{task.name}-eval.jsonl", task.eval))
    return lib


def _metric(result) -> dict:
    return {"metric_name": result.metric_name, "metric": result.best_metric,
            "steps": result.steps}


def joint_vs_sequential(host: ModelHost, tasks: list[QualityTask], config, folder: Path) -> dict:
    """The tasks one after another, then together in one joint job (same settings)."""
    from engine.training.job import TrainingJob, run_job
    from engine.training.joint import JointJob

    names = [t.name for t in tasks]
    losses: dict[str, dict[str, list[float]]] = {"sequential": {}, "joint": {}}

    def recorder(kind: str):
        def record(event: Payload) -> None:
            if isinstance(event, StepProgress):
                losses[kind].setdefault(event.task, []).append(event.loss)
        return record

    lib = bench_library(folder / "sequential", tasks)
    started, train_s, sequential = time.perf_counter(), 0.0, {}
    for name in names:
        job = TrainingJob.start(lib, host, name, replace(config))
        sequential[name] = run_job(job, on_event=recorder("sequential"))
        train_s += job.train_seconds
        print(f"multitask: {name} alone {_metric(sequential[name])}", file=sys.stderr)
    sequential_wall = time.perf_counter() - started

    lib = bench_library(folder / "joint", tasks)
    started = time.perf_counter()
    job = JointJob.start(lib, host, names, [replace(config) for _ in names])
    joint = {r.task: r for r in run_job(job, on_event=recorder("joint")).results}
    joint_wall = time.perf_counter() - started
    print(f"multitask: joint {sequential_wall:.1f} s alone vs {joint_wall:.1f} s together",
          file=sys.stderr)
    per_task = {}
    for name in names:
        pairs = zip(losses["sequential"][name], losses["joint"][name], strict=True)
        per_task[name] = {"sequential": _metric(sequential[name]),
                          "joint": _metric(joint[name]),
                          "max_loss_diff": max(abs(a - b) for a, b in pairs)}
    return {"steps_per_task": config.steps, "sequential_train_s": round(train_s, 2),
            "joint_train_s": round(job.train_seconds, 2),
            "train_time_ratio": round(job.train_seconds / max(train_s, 1e-9), 3),
            "sequential_wall_s": round(sequential_wall, 2), "joint_wall_s": round(joint_wall, 2),
            "wall_time_ratio": round(joint_wall / max(sequential_wall, 1e-9), 3),
            "tasks": per_task}


def task_options(p: argparse.ArgumentParser) -> None:
    """The benchmark tasks and where their data is."""
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help=f"comma list of {', '.join(LOADERS)} (default: all)")
    p.add_argument("--data", default=str(DATA_DIR), help="folder of the benchmark data")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("multitask", help="joint vs sequential training")
    task_options(p)
    p.add_argument("--steps", type=int, default=300,
                   help="steps per task, joint and sequential (default 300)")
    p.add_argument("--train-rows", type=int, default=4000)
    p.add_argument("--eval-rows", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--method", default=None)
    p.add_argument("--length", type=int, default=None)
    p.set_defaults(func=cmd_multitask)


def cmd_multitask(args: argparse.Namespace) -> int:
    from engine.commands._common import emit, load_host
    from engine.training.config import TrainConfig

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        emit(args, {"skipped": f"no benchmark data at {data_dir}"})
        return 0
    host = load_host(args)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    tasks = [load_task(name, data_dir, args.train_rows, args.eval_rows) for name in names]
    overrides = {k: getattr(args, k) for k in ("method", "length", "batch_size")
                 if getattr(args, k) is not None}
    config = TrainConfig(**{**overrides, "steps": args.steps, "eval_every": 0,
                            "checkpoint_every": 0, "eval_size": args.eval_rows})
    out = {"model": host.name, "device": str(host.device), "tasks": names,
           "method": config.method, "length": config.length, "batch_size": config.batch_size,
           "train_rows": args.train_rows, "eval_rows": args.eval_rows}
    with tempfile.TemporaryDirectory() as tmp:
        out["joint"] = joint_vs_sequential(host, tasks, config, Path(tmp) / "joint")
    emit(args, out)
    return 0
