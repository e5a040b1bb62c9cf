"""``promptbank universal create|update`` (a prompt trained on several tasks) and
``promptbank suggest-init`` (rank starting points for a task)."""

from __future__ import annotations

import argparse

from engine.api.measures import label, value_text
from engine.api.train_settings import PROBE_ROWS, PROBE_STEPS, UNIVERSAL_REPLAY
from engine.commands._common import emit, load_host
from engine.commands.train import (
    common_options,
    config_from_args,
    describe_result,
    prompt_options,
    run_training,
)
from engine.methods import METHODS


def register(sub: argparse._SubParsersAction) -> None:
    uni = sub.add_parser("universal", help="a universal prompt trained on several tasks")
    usub = uni.add_subparsers(dest="universal_command", metavar="COMMAND", required=True)
    create = usub.add_parser("create", help="train a universal prompt NAME on source tasks")
    create.add_argument("name")
    create.add_argument("--from", dest="sources", required=True, metavar="TASK,TASK,...",
                        help="the source tasks (two or more)")
    create.add_argument("--instruction", default=None,
                        help="the universal prompt's instruction (its text init)")
    create.add_argument("--cap", type=int, default=None,
                        help="most rows a source gives to an epoch (default 2000)")
    prompt_options(create)
    common_options(create)
    create.set_defaults(func=cmd_create)
    update = usub.add_parser("update", help="continue a universal prompt on added tasks, "
                             "replaying its sources")
    update.add_argument("name")
    update.add_argument("--add", required=True, metavar="TASK[,TASK]",
                        help="the tasks to add to its sources")
    update.add_argument("--replay", type=float, default=UNIVERSAL_REPLAY,
                        help="share of the pool drawn from the earlier sources "
                             f"(default {UNIVERSAL_REPLAY})")
    update.add_argument("--cap", type=int, default=None,
                        help="most rows a source gives to an epoch (default 2000)")
    common_options(update)
    update.set_defaults(func=cmd_update)

    probe = sub.add_parser("suggest-init", help="rank the library's prompts as starting points "
                           "for TASK by a short probe")
    probe.add_argument("task")
    probe.add_argument("--method", choices=METHODS, default=None)
    probe.add_argument("--length", type=int, default=None, help="virtual tokens")
    probe.add_argument("--rows", type=int, default=PROBE_ROWS,
                       help=f"the task's rows the probe trains on (default {PROBE_ROWS})")
    probe.add_argument("--steps", type=int, default=PROBE_STEPS,
                       help=f"steps from each start (default {PROBE_STEPS})")
    probe.set_defaults(func=cmd_suggest)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def describe_sources(result, limits: dict[str, int]) -> tuple[dict, str]:
    """A universal run's summary with each source's metric before and after."""
    payload, text = describe_result(result, limits)
    before, after = result.summary.get("before", {}), result.summary.get("after", {})
    payload["sources"] = {name: {"before": before.get(name), "after": res}
                          for name, res in after.items()}
    lines = [text, f"{'source':<20} {'metric':<12} {'before':>18} {'after':>18}  rows"]
    for name, res in after.items():
        was, metric = before.get(name), res.get("metric_name", "")
        lines.append(f"{name:<20} {label(metric):<12} "
                     f"{'—' if was is None else value_text(metric, was['metric']):>18} "
                     f"{value_text(metric, res['metric']):>18}  {res.get('n', '')}")
    return payload, "\n".join(lines)


def cmd_create(args: argparse.Namespace) -> int:
    from engine.training.universal import UniversalJob

    config = config_from_args(args)
    return run_training(args, lambda lib, host, on_rows: UniversalJob.create(
        lib, host, args.name, _names(args.sources), config, instruction=args.instruction,
        on_rows=on_rows), describe_sources)


def cmd_update(args: argparse.Namespace) -> int:
    from engine.training.universal import UniversalJob

    config = config_from_args(args)
    return run_training(args, lambda lib, host, on_rows: UniversalJob.update(
        lib, host, args.name, _names(args.add), config, on_rows=on_rows), describe_sources)


def cmd_suggest(args: argparse.Namespace) -> int:
    from engine.library import Library
    from engine.training.config import TrainConfig
    from engine.training.probe import rank_task_starts

    library = Library(args.library)
    library.get_task(args.task)  # an unknown task fails before the model loads
    config = TrainConfig(**{k: getattr(args, k) for k in ("method", "length")
                            if getattr(args, k) is not None})
    scores = rank_task_starts(library, load_host(args), args.task, config, rows=args.rows,
                              steps=args.steps)
    if not scores:
        text = (f"No prompt in the library has the {config.method} method and length "
                f"{config.length}, and '{args.task}' has no instruction for a text start.")
    else:
        text = "\n".join([f"Starting points for '{args.task}' ({config.method}, length "
                          f"{config.length}), best first:"] +
                         [f"  {s.init:<28} {s.why}" for s in scores] +
                         ([scores[0].head_start] if scores[0].head_start else []) +
                         [f"Train from the best with `promptbank train {args.task} --init "
                          f"{scores[0].init}`."])
    emit(args, {"task": args.task, "method": config.method, "length": config.length,
                "starts": [s.to_dict() for s in scores]}, text)
    return 0
