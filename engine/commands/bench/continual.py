"""``promptbank bench continual``: what a continued prompt forgets and what it gains, for each
way of continuing.

A sequence is stages of one task (its labels: every stage's): the first stage is trained
once, then each strategy continues that version through the later stages as ``promptbank
continue`` does. After every stage each eval set seen so far is scored with the strategy's
prompt for it: the task's newest version, or for ``progressive`` the version made on that
stage's data (the old ones stay frozen, so it needs to know which stage an input is from).
A prompt trained from its text on each later stage alone gives the from-scratch gain.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.train_settings import DEFAULT_REPLAY
from engine.commands.bench.quality import (
    AG_LABELS,
    DATA_DIR,
    LOADERS,
    QualityTask,
    accuracy,
    load_task,
    scored,
    share_right,
    write_jsonl,
    zero_shot_accuracy,
)
from engine.errors import PromptbankError

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost
    from engine.training.config import TrainConfig

#: The anchored strategies' default weight W of ``W·mean((p − parent)²)``: a mean over the
#: prompt's every number, so W = 100 changed nothing measurable and 10,000 is where it acts.
ANCHOR = 10_000.0
#: name: (whether it replays, whether it is anchored, each stage a frozen version of its own).
STRATEGIES = {
    "continue": (False, False, False),
    "replay": (True, False, False),
    "anchor": (False, True, False),
    "replay+anchor": (True, True, False),
    "progressive": (False, False, True),
}
TASK = "stream"


@dataclass
class Stage:
    """One stage of a sequence: the rows it trains on and the rows it is judged on."""

    name: str
    train: list[tuple[str, str]]
    eval: list[tuple[str, str]]


@dataclass
class Sequence:
    """Stages of one task, its labels being every stage's."""

    name: str
    labels: list[str]
    instruction: str
    stages: list[Stage]

    def judged_on(self, stage: Stage) -> QualityTask:
        """The task scored on one stage's eval rows."""
        return QualityTask(TASK, self.labels, self.instruction, [], stage.eval)


def topic_shift(data: Path, train_rows: int, eval_rows: int) -> Sequence:
    """AG News in two stages of two topics each: the same task, new kinds of input."""
    task = load_task("agnews", data, 10**9, 10**9)
    stages = [Stage(" + ".join(part),
                    [r for r in task.train if r[1] in part][:train_rows],
                    [r for r in task.eval if r[1] in part][:eval_rows])
              for part in (AG_LABELS[:2], AG_LABELS[2:])]
    return Sequence("topics", AG_LABELS, LOADERS["agnews"][2], stages)


def task_sequence(data: Path, train_rows: int, eval_rows: int, names: list[str]) -> Sequence:
    """Real tasks one after another as stages of one task whose labels are all of theirs."""
    tasks = [load_task(name, data, train_rows, eval_rows) for name in names]
    labels = [label for task in tasks for label in task.labels]
    instruction = " ".join(task.instruction for task in tasks)
    return Sequence("tasks", labels, instruction,
                    [Stage(task.name, task.train, task.eval) for task in tasks])


def _train(lib: Library, host: ModelHost, config: TrainConfig, folder: Path,
           data: list[tuple[str, str]] | None = None) -> int:
    """A new run (``data``: continuing the active version on those rows); its version."""
    from dataclasses import replace

    from engine.training.job import TrainingJob, run_job

    path = write_jsonl(folder / f"stage-{time.monotonic_ns()}.jsonl", data) if data else None
    # A job settles some of its config's fields (a continued run takes its parent's method):
    # each run gets its own copy.
    return run_job(TrainingJob.start(lib, host, TASK, replace(config),
                                     continue_data=path)).version


def _prompt(lib: Library, number: int):
    from engine.prompts.soft_prompt import SoftPrompt

    version = lib.get_version(TASK, number)
    return SoftPrompt.load(lib.version_path(version), sha256=version.sha256)


def _new_library(folder: Path, seq: Sequence, first: Stage) -> Library:
    from engine.library import Library

    lib = Library(folder)
    lib.create_task(TASK, kind="classify", labels=seq.labels, instruction=seq.instruction)
    lib.add_dataset(TASK, write_jsonl(folder.parent / f"{folder.name}.jsonl", first.train))
    return lib


def run_sequence(host: ModelHost, seq: Sequence, config: TrainConfig, folder: Path,
                 strategies: list[str], replay_share: float = DEFAULT_REPLAY,
                 anchor_weight: float = ANCHOR) -> dict:
    """Every strategy through ``seq``: accuracies after each stage, forgetting, gain kept,
    time; with the zero-shot and from-scratch accuracies of each stage."""
    from dataclasses import replace

    from engine.library import Library

    tasks = [seq.judged_on(stage) for stage in seq.stages]
    zero = [zero_shot_accuracy(host, task) for task in tasks]
    scratch = [None]
    for k, stage in enumerate(seq.stages[1:], 1):
        lib = _new_library(folder / f"scratch-{k}", seq, stage)
        scratch.append(accuracy(host, tasks[k], _prompt(lib, _train(lib, host, config,
                                                                       folder))))
        lib.close()
    base = _new_library(folder / "base", seq, seq.stages[0])
    started = time.perf_counter()
    first = _train(base, host, config, folder)
    first_seconds = time.perf_counter() - started
    first_results = scored(host, tasks[0], _prompt(base, first))
    first_accuracy = share_right(tasks[0], first_results)
    base.close()
    rows = []
    for name in strategies:
        replays, anchored, progressive = STRATEGIES[name]
        replay = replay_share if replays else 0.0
        anchor = anchor_weight if anchored else 0.0
        lib_dir = folder / name
        shutil.copytree(folder / "base", lib_dir)
        lib = Library(lib_dir)
        versions, history, seconds = [first], [[first_accuracy]], first_seconds
        results = [first_results]
        for k, stage in enumerate(seq.stages[1:], 1):
            started = time.perf_counter()
            versions.append(_train(lib, host, replace(config, replay=replay, anchor=anchor),
                                   folder, stage.train))
            seconds += time.perf_counter() - started
            results = [scored(host, tasks[i], _prompt(
                lib, versions[i] if progressive else versions[-1])) for i in range(k + 1)]
            history.append([share_right(task, r)
                            for task, r in zip(tasks[:k + 1], results, strict=True)])
        lib.close()
        # What the first stage's inputs get now: the same probabilities, bit for bit, only
        # if the prompt serving them is the one the first stage made.
        unchanged = [r.probs for r in results[0]] == [r.probs for r in first_results]
        final = history[-1]
        best = [max(h[i] for h in history[i:]) for i in range(len(final))]
        earlier = range(len(final) - 1)
        kept = [(final[k] - zero[k]) / (scratch[k] - zero[k])
                for k in range(1, len(final)) if scratch[k] - zero[k] > 0]
        rows.append({
            "strategy": name, "replay": replay, "anchor": anchor, "progressive": progressive,
            "history": history, "final": final,
            "average": sum(final) / len(final),
            "forgetting_points": 100 * sum(best[i] - final[i] for i in earlier) / len(earlier),
            "gain_kept": sum(kept) / len(kept) if kept else None,
            "old_outputs_unchanged": unchanged,
            "seconds": round(seconds, 1)})
        print(f"{seq.name} {name}: average {rows[-1]['average']:.3f}, forgetting "
              f"{rows[-1]['forgetting_points']:.1f} points, gain kept {rows[-1]['gain_kept']}",
              file=sys.stderr)
    return {"sequence": seq.name, "stages": [s.name for s in seq.stages],
            "train_rows": [len(s.train) for s in seq.stages],
            "eval_rows": [len(s.eval) for s in seq.stages],
            "zero_shot": zero, "scratch": scratch, "strategies": rows}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("continual", help="forgetting and gain of each way to continue a prompt")
    p.add_argument("--data", default=str(DATA_DIR), help="folder of the benchmark data")
    p.add_argument("--sequences", default="topics,tasks",
                   help="comma list: topics (AG News, two topics then two others), tasks "
                        "(sst2 then sms_spam, then agnews unless --quick)")
    p.add_argument("--strategies", default=",".join(STRATEGIES),
                   help=f"comma list of {', '.join(STRATEGIES)}")
    p.add_argument("--replay", type=float, default=DEFAULT_REPLAY,
                   help=f"the replaying strategies' share (default {DEFAULT_REPLAY:g})")
    p.add_argument("--anchor", type=float, default=ANCHOR,
                   help=f"the anchored strategies' weight (default {ANCHOR:g})")
    p.add_argument("--steps", type=int, default=None, help="steps per stage (default 100; "
                   "--quick: 10)")
    p.add_argument("--train-rows", type=int, default=None, help="training rows per stage "
                   "(default 1000; --quick: 100)")
    p.add_argument("--eval-size", type=int, default=None, help="eval rows per stage "
                   "(default 200; --quick: 32)")
    p.add_argument("--quick", action="store_true",
                   help="fewer steps and rows, two stages per sequence (about 10 minutes on "
                        "a laptop CPU with the default model)")
    p.set_defaults(func=cmd_continual)


def cmd_continual(args: argparse.Namespace) -> int:
    from engine.commands._common import emit, load_host
    from engine.training.config import TrainConfig

    data = Path(args.data)
    if not data.is_dir():
        emit(args, {"skipped": f"no benchmark data at {data}"})
        return 0
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise PromptbankError(f"Unknown strategy {', '.join(unknown)}.",
                              hint=f"Use {', '.join(STRATEGIES)}.")
    steps = args.steps or (10 if args.quick else 100)
    train_rows = args.train_rows or (100 if args.quick else 1000)
    eval_rows = args.eval_size or (32 if args.quick else 200)
    makers = {"topics": lambda: topic_shift(data, train_rows, eval_rows),
              "tasks": lambda: task_sequence(data, train_rows, eval_rows,
                                             ["sst2", "sms_spam"] if args.quick
                                             else ["sst2", "sms_spam", "agnews"])}
    names = [s.strip() for s in args.sequences.split(",") if s.strip()]
    if any(n not in makers for n in names):
        raise PromptbankError(f"Unknown sequence in '{args.sequences}'.",
                              hint="Use topics, tasks or both.")
    host = load_host(args)
    config = TrainConfig(steps=steps, eval_every=0, checkpoint_every=0)
    results = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run_sequence(host, makers[name](), config, Path(tmp), strategies,
                                        args.replay, args.anchor))
    emit(args, {"model": host.name, "device": str(host.device), "steps": steps,
                "quick": args.quick, "sequences": results})
    return 0
