"""``promptbank train`` and ``promptbank continue``: train a new prompt version of a task, or of
several tasks at once in one joint job."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.api.measures import metric_text
from engine.api.train_settings import DEFAULT_REPLAY, MODES
from engine.api.training import EvalProgress, StepProgress, TaskFailed, VersionSaved
from engine.commands._common import ProgressLine, emit, load_host
from engine.methods import METHODS
from engine.training.config import TrainConfig

if TYPE_CHECKING:
    from engine.library import Library


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a new soft prompt version of TASK (several "
                           "tasks: one joint job, each task with its own prompt)")
    train.add_argument("tasks", nargs="+", metavar="TASK")
    prompt_options(train)
    train.add_argument("--mode", choices=MODES, default=None,
                       help="auto (default): few-shot for a task of at most 64 examples")
    train.add_argument("--resume", type=int, metavar="RUN", default=None,
                       help="continue a cancelled or interrupted run (any run of a joint job) "
                            "from its checkpoint")
    common_options(train)
    train.set_defaults(func=cmd_train)

    plan = sub.add_parser("plan", help="the memory a training of TASK needs on this device, "
                          "and the rows per pass that make it fit (nothing is loaded)")
    plan.add_argument("tasks", nargs="+", metavar="TASK")
    prompt_options(plan)
    plan.add_argument("--mode", choices=MODES, default=None)
    common_options(plan)
    plan.set_defaults(func=cmd_plan)

    cont = sub.add_parser("continue", help="continue TASK's active version on new data")
    cont.add_argument("task")
    cont.add_argument("--data", required=True, metavar="FILE", help="the new dataset file")
    cont.add_argument("--replay", type=float, default=DEFAULT_REPLAY,
                      help="share of the training pool drawn from earlier data "
                           f"(default {DEFAULT_REPLAY})")
    cont.add_argument("--anchor", type=float, default=0.0,
                      help="weight of the pull towards the parent prompt, a mean over its "
                           "numbers: it acts from about 10000 (default 0)")
    common_options(cont)
    cont.set_defaults(func=cmd_continue)


def prompt_options(p: argparse.ArgumentParser) -> None:
    """The options of a new prompt: its method, length and start."""
    p.add_argument("--method", choices=METHODS, default=None)
    p.add_argument("--length", type=int, default=None, help="virtual tokens")
    p.add_argument("--init", default=None,
                   help="auto (default: the instruction, else the labels, else the task's name "
                        "and outputs, else vocabulary) | text | labels | examples | vocab | "
                        "random | task:OTHER (transfer) | universal:NAME (a universal prompt) | "
                        "mix or mix:A,B (auto mixed with the library's prompts, the weights "
                        "trained)")


def common_options(p: argparse.ArgumentParser) -> None:
    """The training options every training command takes."""
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--grad-accum", type=int, default=None)
    p.add_argument("--micro-batch", type=int, default=None,
                   help="rows per forward/backward pass: the same training in less memory "
                        "(default 0: the whole batch at once)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many evaluations without improvement")
    p.add_argument("--stop-at-loss", type=float, default=None)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS")
    p.add_argument("--reparam", type=int, default=None,
                   help="prefix only: hidden width of an MLP reparameterisation (0: none)")
    p.add_argument("--max-length", type=int, default=None, metavar="TOKENS",
                   help=f"longest training row; longer rows lose the start of their input "
                        f"(default {TrainConfig.max_length})")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help=f"save a resumable checkpoint every N steps (default "
                        f"{TrainConfig.checkpoint_every}; 0: only at the start and on cancel)")


OPTION_FIELDS = {"method": "method", "length": "length", "init": "init", "steps": "steps",
                 "lr": "lr", "batch_size": "batch_size", "grad_accum": "grad_accum",
                 "micro_batch": "micro_batch",
                 "eval_every": "eval_every", "seed": "seed", "patience": "patience",
                 "stop_at_loss": "stop_at_loss", "time_budget": "time_budget_s",
                 "reparam": "reparam", "replay": "replay", "anchor": "anchor",
                 "mode": "mode", "cap": "mix_cap", "max_length": "max_length",
                 "checkpoint_every": "checkpoint_every"}


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user gave on the command line."""
    return {field: getattr(args, option) for option, field in OPTION_FIELDS.items()
            if getattr(args, option, None) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig with the options the user gave over the defaults."""
    return TrainConfig(**given_settings(args))


class ProgressBar:
    """One stderr line: step, loss, learning rate, data tokens/s, ETA (a joint job: each
    task's loss); eval results below."""

    def __init__(self, quiet: bool, tasks: list[str]) -> None:
        self.quiet = quiet
        self.joint = len(tasks) > 1
        self.losses: dict[str, float] = {}

    def __call__(self, event: StepProgress | EvalProgress | VersionSaved | TaskFailed) -> None:
        if self.quiet:
            return
        who = f"{event.task} " if self.joint and event.task else ""
        if isinstance(event, EvalProgress):
            loss = ("" if event.metric_name == "eval_loss" or event.eval_loss is None
                    else f"; {metric_text('eval_loss', event.eval_loss, None)}")
            print(f"\n  {who}eval @ {event.step}: "
                  f"{metric_text(event.metric_name, event.metric, event.n)}{loss}",
                  file=sys.stderr, flush=True)
            return
        if isinstance(event, VersionSaved | TaskFailed):
            what = (f"saved as version {event.version}" if isinstance(event, VersionSaved)
                    else f"failed: {event.message}")
            print(f"\n  {who}{what}", file=sys.stderr, flush=True)
            return
        self.losses[event.task] = event.loss
        width = 24
        done = int(width * event.step / max(1, event.total))
        eta = time.strftime("%M:%S", time.gmtime(event.eta_s or 0))
        loss = (" ".join(f"{t} {v:.4f}" for t, v in self.losses.items()) if self.joint
                else f"{event.loss:.4f} lr {event.lr:.2e}")
        print(f"\r[{'#' * done}{'.' * (width - done)}] step {event.step}/{event.total} "
              f"loss {loss} {event.tokens_per_s:.0f} tok/s ETA {eta}", end="",
              file=sys.stderr, flush=True)


def describe_result(result, limits: dict[str, int]) -> tuple[dict, str]:
    """A finished task's JSON summary and its sentences (``limits``: each task's longest row,
    for the note on rows cut to it)."""
    payload = result.to_dict()
    for key in ("rows", "truncated_rows", "gain_new", "forgetting_old", "train_seconds",
                "init_note"):
        if key in result.summary:
            payload[key] = result.summary[key]
    best = result.summary.get("best") or {}
    metric = metric_text(result.metric_name, result.best_metric, best.get("n"))
    text = (f"Saved {result.task} version {result.version} after {result.steps} steps "
            f"({metric}, {result.tokens_per_s:.0f} data tokens/s).")
    note = truncation_note(result.summary, limits[result.task])
    if note:
        text += f"\n{note}"
    if not result.summary.get("activated"):
        text += (f"\nThe active version is unchanged; use `promptbank activate {result.task} "
                 f"{result.version}` to serve this one.")
    if "gain_new" in payload:
        text += (f"\nGain on the new data: {payload['gain_new']:+.4f}; forgetting on the old: "
                 f"{payload.get('forgetting_old', 0.0):+.4f}.")
    return payload, text


def _describe_joint(result, limits: dict[str, int]) -> tuple[dict, str]:
    parts = [describe_result(r, limits) for r in result.results]
    lines = [text for _, text in parts]
    lines += [f"{task} failed: {message}" for task, message in result.failed.items()]
    return {**result.to_dict(), "tasks": [payload for payload, _ in parts]}, "\n".join(lines)


def truncation_note(summary: dict, max_length: int) -> str:
    """The sentence about rows cut to fit ``max_length`` ("" when none were)."""
    cut = summary.get("truncated_rows") or 0
    if not cut:
        return ""
    rows = summary.get("rows")
    of = f" of {rows:,}" if isinstance(rows, int) else ""
    return (f"{cut:,}{of} training rows were longer than {max_length} tokens and lost the "
            "start of their input (--max-length).")


def _preparing() -> Callable[[int, int], None]:
    line = ProgressLine()
    return lambda done, total: line(f"preparing rows: {done:,} of {total:,}",
                                    done / max(1, total))


def run_training(args: argparse.Namespace, start, describe=describe_result) -> int:
    """Start a job (``start(library, host, on_rows)``, with a bar while its rows are
    prepared), step it with a progress bar to its end (Ctrl-C cancels it, resumable) and
    print what it saved."""
    from engine.library import Library
    from engine.training.job import run_job

    library = Library(args.library)
    host = load_host(args)
    job = start(library, host, None if args.json else _preparing())
    limits = {slot.task: slot.config.max_length for slot in job.slots}
    if not args.json:
        names = ", ".join(f"'{t}'" for t in job.tasks)
        what = f"run {job.run_id}" if len(job.tasks) == 1 else f"joint job (run {job.run_id})"
        print(f"{what}: training {names} for {job.total_steps} steps", file=sys.stderr)
        for slot in job.slots:
            notes = [slot.summary.get("init_note", ""),
                     truncation_note(slot.summary, slot.config.max_length)]
            for note in filter(None, notes):
                print(f"{slot.task}: {note}" if len(job.slots) > 1 else note, file=sys.stderr)
    try:
        result = run_job(job, on_event=ProgressBar(args.json, job.tasks))
    except KeyboardInterrupt:
        job.cancel()
        print(f"\npromptbank: cancelled; resume with `promptbank train {job.tasks[0]} "
              f"--resume {job.run_id}`.", file=sys.stderr)
        return 130
    if not args.json:
        print(file=sys.stderr)
    emit(args, *describe(result, limits))
    return 0


def _task_config(library: Library, task: str, given: dict):
    """A task's settings: its mode's defaults (few-shot for a small task), then the options."""
    from engine.training.settings import settings_for

    config = settings_for(library, task, given)
    if config.mode == "few-shot" and given.get("mode") != "few-shot":
        print(f"'{task}' has few examples: training in few-shot mode (--mode standard to "
              "change).", file=sys.stderr)
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from engine.training.job import TrainingJob
    from engine.training.joint import JointJob

    if args.resume is not None:
        from engine.library import Library
        from engine.training.resume import resume_run

        Library(args.library).claim_run(args.resume)  # refused at once while another trains it
        return run_training(args, lambda lib, host, on_rows: resume_run(
            lib, host, args.resume, on_rows=on_rows), _describe_any)
    given = given_settings(args)
    if len(args.tasks) == 1:
        return run_training(args, lambda lib, host, on_rows: TrainingJob.start(
            lib, host, args.tasks[0], _task_config(lib, args.tasks[0], given),
            on_rows=on_rows))
    return run_training(args, lambda lib, host, on_rows: JointJob.start(
        lib, host, args.tasks, [_task_config(lib, t, given) for t in args.tasks],
        on_rows=on_rows), _describe_joint)


def cmd_plan(args: argparse.Namespace) -> int:
    from engine.commands.library import open_library
    from engine.training.plan import plan_run

    library = open_library(args)
    try:
        config = _task_config(library, args.tasks[0], given_settings(args))
        plan = plan_run(library, args.tasks, config, model=args.model, device=args.device,
                        dtype=args.dtype, quantize=args.quantize or "")
    finally:
        library.close()
    emit(args, plan.to_data(), plan.describe())
    return 0 if plan.fits else 3


def _describe_any(result, limits: dict[str, int]) -> tuple[dict, str]:
    from engine.training.joint import JointResult

    if isinstance(result, JointResult):
        return _describe_joint(result, limits)
    return describe_result(result, limits)


def cmd_continue(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.training.job import TrainingJob

    config = config_from_args(args)
    return run_training(args, lambda lib, host, on_rows: TrainingJob.start(
        lib, host, args.task, config, continue_data=Path(args.data), on_rows=on_rows))
