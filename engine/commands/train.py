"""``promptbank train`` and ``promptbank continue``: train a new prompt version of a task."""

from __future__ import annotations

import argparse
import sys
import time

from engine.commands._common import emit, load_host, stderr_progress
from engine.methods import METHODS
from engine.payloads import EvalProgress, StepProgress
from engine.training.config import DEFAULT_REPLAY, TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a new soft prompt version of TASK")
    train.add_argument("task")
    train.add_argument("--method", choices=METHODS, default=None)
    train.add_argument("--length", type=int, default=None, help="virtual tokens")
    train.add_argument("--init", default=None,
                       help="text | labels | vocab | random | task:OTHER (transfer)")
    train.add_argument("--resume", type=int, metavar="RUN", default=None,
                       help="continue a cancelled or interrupted run from its checkpoint")
    _common_options(train)
    train.set_defaults(func=cmd_train)

    cont = sub.add_parser("continue", help="continue TASK's active version on new data")
    cont.add_argument("task")
    cont.add_argument("--data", required=True, metavar="FILE", help="the new dataset file")
    cont.add_argument("--replay", type=float, default=DEFAULT_REPLAY,
                      help="share of the training pool drawn from earlier data "
                           f"(default {DEFAULT_REPLAY})")
    cont.add_argument("--anchor", type=float, default=0.0,
                      help="weight of the pull towards the parent prompt (default 0)")
    _common_options(cont)
    cont.set_defaults(func=cmd_continue)


def _common_options(p: argparse.ArgumentParser) -> None:
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
                 "max_length": "max_length", "checkpoint_every": "checkpoint_every"}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig with the options the user gave over the defaults."""
    given = {field: getattr(args, option) for option, field in OPTION_FIELDS.items()
             if getattr(args, option, None) is not None}
    return TrainConfig(**given)


class ProgressBar:
    """One stderr line: step, loss, learning rate, data tokens/s, ETA; eval results below."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: StepProgress | EvalProgress) -> None:
        if self.quiet:
            return
        if isinstance(event, EvalProgress):
            print(f"\n  eval @ {event.step}: {event.metric_name} {event.metric:.4f}, "
                  f"eval loss {event.eval_loss:.4f}", file=sys.stderr, flush=True)
            return
        width = 24
        done = int(width * event.step / max(1, event.total))
        eta = time.strftime("%M:%S", time.gmtime(event.eta_s or 0))
        print(f"\r[{'#' * done}{'.' * (width - done)}] step {event.step}/{event.total} "
              f"loss {event.loss:.4f} lr {event.lr:.2e} "
              f"{event.tokens_per_s:.0f} tok/s ETA {eta}", end="", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, start) -> int:
    from engine.library import Library
    from engine.training.job import run_job

    library = Library(args.library)
    host = load_host(args)
    job = start(library, host, None if args.json else _preparing)
    if not args.json:
        print(f"run {job.run_id}: training '{job.task}' for {job.total_steps} steps",
              file=sys.stderr)
        truncated = truncation_note(job.summary, job.config.max_length)
        if truncated:
            print(truncated, file=sys.stderr)
    try:
        result = run_job(job, on_event=ProgressBar(args.json))
    except KeyboardInterrupt:
        job.cancel()
        print(f"\npromptbank: cancelled; resume with `promptbank train {job.task} --resume "
              f"{job.run_id}`.", file=sys.stderr)
        return 130
    if not args.json:
        print(file=sys.stderr)
    payload = result.to_dict()
    for key in ("rows", "truncated_rows", "gain_new", "forgetting_old"):
        if key in result.summary:
            payload[key] = result.summary[key]
    metric = "n/a" if result.best_metric is None else f"{result.best_metric:.4f}"
    text = (f"Saved {result.task} version {result.version} after {result.steps} steps "
            f"({result.metric_name} {metric}, {result.tokens_per_s:.0f} data tokens/s).")
    note = truncation_note(result.summary, job.config.max_length)
    if note:
        text += f"\n{note}"
    if not result.summary.get("activated"):
        text += (f"\nThe active version is unchanged; use `promptbank activate {result.task} "
                 f"{result.version}` to serve this one.")
    if "gain_new" in payload:
        text += (f"\nGain on the new data: {payload['gain_new']:+.4f}; forgetting on the old: "
                 f"{payload.get('forgetting_old', 0.0):+.4f}.")
    emit(args, payload, text)
    return 0


def _preparing(done: int, total: int) -> None:
    stderr_progress(f"preparing rows: {done:,} of {total:,}", done / max(1, total))


def truncation_note(summary: dict, max_length: int) -> str:
    """The sentence about rows cut to fit ``max_length`` ("" when none were)."""
    cut = summary.get("truncated_rows") or 0
    if not cut:
        return ""
    rows = summary.get("rows")
    of = f" of {rows:,}" if isinstance(rows, int) else ""
    return (f"{cut:,}{of} training rows were longer than {max_length} tokens and lost the "
            "start of their input (--max-length).")


def cmd_train(args: argparse.Namespace) -> int:
    from engine.training.job import TrainingJob

    if args.resume is not None:
        from engine.library import Library

        Library(args.library).claim_run(args.resume)  # refused at once while another trains it
        return _run(args, lambda lib, host, on_rows: TrainingJob.resume(lib, host, args.resume,
                                                                        on_rows=on_rows))
    config = config_from_args(args)
    return _run(args, lambda lib, host, on_rows: TrainingJob.start(lib, host, args.task, config,
                                                                   on_rows=on_rows))


def cmd_continue(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.training.job import TrainingJob

    config = config_from_args(args)
    return _run(args, lambda lib, host, on_rows: TrainingJob.start(
        lib, host, args.task, config, continue_data=Path(args.data), on_rows=on_rows))
