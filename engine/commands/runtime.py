"""``promptbank run|eval|compare|apply``: use a task's prompts on text, data sets and files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.api.measures import metric_text
from engine.commands._common import emit, load_host
from engine.errors import PromptbankError

TRUNCATION_WARNING = ("warning: {n} input(s) were longer than the model's context; their start "
                      "was cut off.")


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a task on TEXT (or the base model with --no-task)",
                         usage="promptbank run TASK TEXT | promptbank run --no-task TEXT")
    run.add_argument("words", nargs="+", metavar="TASK TEXT")
    run.add_argument("--no-task", action="store_true", help="the base model, no soft prompt")
    run.add_argument("--version", type=int, default=None, help="default: the active version")
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    run.add_argument("--seed", type=int, default=None)
    _force(run)
    run.set_defaults(func=cmd_run)

    ev = sub.add_parser("eval", help="evaluate a version or a baseline; stores the result")
    ev.add_argument("task")
    ev.add_argument("--version", type=int, default=None, help="default: the active version")
    ev.add_argument("--data", type=Path, default=None,
                    help="evaluation file (default: the task's held-out split)")
    ev.add_argument("--baseline", choices=("none", "instruction", "fewshot"), default="none",
                    help="none: the soft prompt; instruction / fewshot: the base model")
    _force(ev)
    ev.set_defaults(func=cmd_eval)

    cmp = sub.add_parser("compare", help="a table of a task's stored evaluations")
    cmp.add_argument("task")
    cmp.set_defaults(func=cmd_compare)

    ap = sub.add_parser("apply", help="run tasks over a column of a CSV/TSV/JSONL file")
    ap.add_argument("tasks", nargs="+", metavar="TASK")
    ap.add_argument("--in", dest="in_path", type=Path, required=True)
    ap.add_argument("--column", required=True, help="the column holding the input text")
    ap.add_argument("--out", type=Path, required=True, help=".csv, .tsv or .jsonl")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64, help="for generate tasks")
    _force(ap)
    ap.set_defaults(func=cmd_apply)


def _force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="use prompts trained on another model of the same size")


def _runtime(args: argparse.Namespace):
    from engine.library import Library
    from engine.serving.runtime import Runtime

    library = Library(args.library)
    host = load_host(args)
    return Runtime(host, library, force=getattr(args, "force", False),
                   max_input_tokens=args.max_input_tokens), library


def _warn_truncated(count: int) -> None:
    if count:
        print(TRUNCATION_WARNING.format(n=count), file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    expected = 1 if args.no_task else 2
    if len(args.words) != expected:
        raise PromptbankError("Give a task and a text in quotes, or --no-task and a text.",
                              hint='Example: promptbank run sentiment "a great film"')
    task, text = (None, args.words[0]) if args.no_task else args.words
    from engine.serving.runtime import GenRow

    runtime, _ = _runtime(args)
    if task is not None and runtime.bank.spec(task).kind == "classify":
        result = runtime.score(task, [text], version=args.version)[0]
        _warn_truncated(int(result.truncated))
        lines = [f"{result.label}"] + [f"  {k:<20} {v:.4f}" for k, v in sorted(
            result.probs.items(), key=lambda kv: -kv[1])]
        emit(args, {"task": task, "version": result.version, "label": result.label,
                    "probs": result.probs, "truncated": result.truncated}, "\n".join(lines))
        return 0
    row = GenRow(text, task, args.version, max_new_tokens=args.max_new_tokens,
                 temperature=args.temperature, top_p=args.top_p, stop=args.stop, seed=args.seed)
    stream = None if args.json else (lambda _i, piece: print(piece, end="", flush=True))
    result = runtime.generate([row], on_token=stream)[0]
    if not args.json:
        print()
    _warn_truncated(int(result.truncated))
    if args.json:
        emit(args, {"task": task, "version": result.version, "text": result.text,
                    "tokens": len(result.tokens), "finish_reason": result.finish_reason,
                    "truncated": result.truncated})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.serving.evaluate import evaluate

    runtime, library = _runtime(args)
    progress = None if args.json else _Bar("examples")
    result = evaluate(runtime, library, args.task, version=args.version, data=args.data,
                      baseline=args.baseline, on_progress=progress and progress.evaluation)
    if progress:
        progress.close()
    what = f"version {result.version}" if result.version else f"baseline {result.baseline}"
    text = "\n".join([f"{args.task} ({what}) on {result.n:,} examples:"] +
                     [f"  {metric_text(k, v, result.n)}" for k, v in result.metrics.items()])
    emit(args, result.to_dict(), text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.library import Library
    from engine.serving.evaluate import compare_rows, compare_text

    rows = compare_rows(Library(args.library), args.task)
    emit(args, {"task": args.task, "evaluations": rows}, compare_text(rows))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from engine.serving.apply import apply_file

    if args.out.exists() and not args.overwrite:
        raise PromptbankError(f"The output file {args.out} already exists.",
                              hint="Choose another name or pass --overwrite.")
    runtime, _ = _runtime(args)
    bar = _Bar("rows")
    try:
        result = apply_file(runtime, args.tasks, args.in_path, args.column, args.out,
                            overwrite=args.overwrite, on_progress=bar.apply,
                            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    finally:
        bar.close()
    _warn_truncated(result.truncated)
    resumed = f" (resumed at row {result.resumed_from})" if result.resumed_from else ""
    emit(args, result.to_dict(),
         f"Wrote {result.rows} rows with {', '.join(args.tasks)} to {result.out_path}{resumed}.")
    return 0


class _Bar:
    """A one-line progress bar on stderr: count, rate and time left."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.started = time.perf_counter()
        self.shown = False

    def evaluation(self, done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self.apply(done, total, rate, (total - done) / rate if rate else None)

    def apply(self, done: int, total: int, rate: float, eta: float | None) -> None:
        width = 24
        filled = int(width * done / max(total, 1))
        eta_text = "?" if eta is None else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}  "
              f"{rate:.1f} {self.unit}/s  ETA {eta_text}   ", end="", file=sys.stderr, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)
