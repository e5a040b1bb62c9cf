"""Handlers of the ops that run tasks: generation, label scores, evaluation, batch apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine.api.generation import (
    ApplyOutcome,
    EvalOutcome,
    Generated,
    GeneratedText,
    RowDone,
    RowsProgress,
    Scored,
    Token,
    generate_rows,
)
from engine.api.wire import ProtocolError
from engine.errors import PromptbankError
from engine.forward.breaks import layer_breaks
from engine.server.context import Context, not_available


class EvalCancelled(Exception):
    """Raised from an evaluation's progress callback to stop it when cancelled."""


class GenerationCancelled(Exception):
    """Raised between a generate's layers (in its prefill) when a cancel of it arrived."""


def shots(value: list) -> list[tuple[str, str]]:
    """Few-shot examples from JSON: a list of [input, output] pairs."""
    if not all(isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
               for p in value):
        raise ProtocolError("Field 'shots' of 'generate' must be a list of [input, output] "
                            "string pairs.")
    return [(a, b) for a, b in value]


def _gen_rows(rows: list[dict]) -> list:
    """``GenRow``s from validated ``generate`` row objects."""
    from engine.serving.runtime import GenRow

    fields = {f.name for f in dataclasses.fields(GenRow)}
    gen_rows = []
    for row in rows:
        if "shots" in row:
            row["shots"] = shots(row["shots"])
        gen_rows.append(GenRow(**{k: v for k, v in row.items() if k in fields}))
    return gen_rows


def generate(ctx: Context, rid: str, args: dict) -> None:
    gen_rows = _gen_rows(generate_rows(args))
    runtime = ctx.runtime(rid)

    decoding = []  # set at the first token: the prefill is over

    def on_token(row: int, text: str) -> None:
        decoding.append(True)
        if args["stream"]:
            ctx.send(Token(row=row, text=text).event(rid))

    def on_done(done: RowDone) -> None:
        if args["stream"]:
            ctx.send(done.event(rid))

    # Rows of an in-process requester (the HTTP server) join while this decodes, unless
    # other requests or a training job wait for the model: those go first.
    feed = ctx.feeds.get(rid)

    def admit(free: int) -> list:
        if ctx.scheduler.busy():
            return []
        taken = feed.take(free)
        return _gen_rows(generate_rows({"rows": taken})) if taken else []

    fed = {} if feed is None else {"admit": admit, "row_stop": feed.gone,
                                   "batch_size": feed.capacity}

    # A cancel of this request stops it between tokens (see Scheduler.stoppable), keeping the
    # text so far; during the prefill (thousands of tokens take a minute on a CPU) it stops
    # it between layers, and pings are answered there.
    with ctx.scheduler.stoppable(rid) as should_stop:
        def between() -> None:
            ctx.scheduler.serve_control()
            if should_stop() and not decoding:
                raise GenerationCancelled

        try:
            with layer_breaks(runtime.host.model, between):
                results = runtime.generate(gen_rows, on_token=on_token,
                                           should_stop=should_stop, on_done=on_done, **fed)
        except GenerationCancelled:
            results = [GeneratedText(finish_reason="cancelled") for _ in gen_rows]
    stopped = any(r.finish_reason == "cancelled" for r in results)
    ctx.send(Generated(results, status="cancelled" if stopped else "done").event(rid))


def score(ctx: Context, rid: str, args: dict) -> None:
    texts = args["texts"]
    if not all(isinstance(t, str) for t in texts):
        raise ProtocolError("Argument 'texts' of 'score' must be a list of strings.")
    baseline, system = args["baseline"], None
    if baseline == "instruction":
        system = (ctx.library.get_task(args["task"]).instruction or "").strip()
        if not system:
            raise PromptbankError(f"The task '{args['task']}' has no instruction to score with.",
                                  hint="Give it one on the task page (Edit).")
    ctx.send(Scored(ctx.runtime(rid).score(args["task"], texts, version=args["version"],
                                           use_prompt=baseline == "none",
                                           system=system)).event(rid))


def evaluate(ctx: Context, rid: str, args: dict) -> None:
    try:
        from engine.serving.evaluate import evaluate as run_evaluation
    except ImportError as exc:
        raise not_available("evaluation") from exc
    runtime = ctx.runtime(rid)
    data = Path(args["data"]).expanduser() if args["data"] else None

    def work(should_stop: Any) -> None:
        def on_progress(done: int, total: int) -> None:
            ctx.send(RowsProgress(done=done, total=total).event(rid))
            ctx.scheduler.serve_pending()
            if should_stop():
                raise EvalCancelled

        try:
            res = run_evaluation(runtime, ctx.library, args["task"], version=args["version"],
                                 data=data, baseline=args["baseline"], on_progress=on_progress)
        except EvalCancelled:
            # Nothing was stored: an evaluation is recorded only when complete.
            ctx.send(EvalOutcome(status="cancelled", task=args["task"]).event(rid))
            return
        ctx.send(EvalOutcome(status="done", **res.to_dict()).event(rid))

    ctx.scheduler.run_long(rid, "eval", args["task"], work)


def apply(ctx: Context, rid: str, args: dict) -> None:
    try:
        from engine.serving.apply import apply_file
    except ImportError as exc:
        raise not_available("batch apply") from exc
    tasks = args["tasks"] if isinstance(args["tasks"], list) else [args["tasks"]]
    if not all(isinstance(t, str) for t in tasks):
        raise ProtocolError("Argument 'tasks' of 'apply' must be a task name or a list "
                            "of task names.")
    runtime = ctx.runtime(rid)

    def work(should_stop: Any) -> None:
        def on_progress(done: int, total: int, rate: float, eta: float | None) -> None:
            ctx.send(RowsProgress(done=done, total=total, rows_per_s=rate,
                                  eta_s=eta).event(rid))
            ctx.scheduler.serve_pending()

        res = apply_file(runtime, tasks, Path(args["input"]).expanduser(), args["column"],
                         Path(args["output"]).expanduser(), overwrite=args["overwrite"],
                         on_progress=on_progress, should_stop=should_stop)
        status = "done" if res.complete else "cancelled"
        ctx.send(ApplyOutcome(status=status, **res.to_dict()).event(rid))

    ctx.scheduler.run_long(rid, "apply", ",".join(tasks), work)


def serve_http(ctx: Context, rid: str, args: dict) -> None:
    from engine.server.openai_http.app import start_server, stop_server

    if args["stop"]:
        ctx.send(stop_server(ctx).event(rid))
        return
    ctx.ensure_model(rid)
    ctx.send(start_server(ctx, args["host"], args["port"], args["api_key"]).event(rid))


HANDLERS = {"generate": generate, "score": score, "eval": evaluate, "apply": apply,
            "serve_http": serve_http}
