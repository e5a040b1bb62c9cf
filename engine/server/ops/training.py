"""Handlers of the training ops: one task's job, continuing, resuming, many tasks at once
(a joint job, universal prompts), ranking starting points, and the memory plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.api.training import ProbeProgress, RankedStarts, StartRank
from engine.api.wire import ProtocolError
from engine.errors import PromptbankError
from engine.server.context import Context, not_available, run_ids


def _names(op: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ProtocolError(f"Argument '{name}' of '{op}' must be a list of task names.")
    return value


def train(ctx: Context, rid: str, args: dict) -> None:
    task = ctx.library.get_task(args["task"]).name
    config = ctx.train_config(args["config"], task)
    from engine.training.job import TrainingJob

    ctx.submit(rid, "train", task,
               lambda between, on_rows: TrainingJob.start(
                   ctx.library, ctx.ensure_model(rid), task, config, between=between,
                   on_rows=on_rows))


def plan(ctx: Context, rid: str, args: dict) -> None:
    from engine.training.plan import plan_run

    tasks = [ctx.library.get_task(t).name for t in args["tasks"]]
    config = ctx.train_config(args["config"], tasks[0])
    host = ctx.ensure_model(rid)
    found = plan_run(ctx.library, tasks, config, model=host.spec, device=str(host.device),
                     dtype=str(host.dtype).removeprefix("torch."), quantize=host.quantization,
                     resident=host)
    ctx.send(found.event(rid))


def continue_training(ctx: Context, rid: str, args: dict) -> None:
    config = ctx.train_config(args["config"])
    task = ctx.library.get_task(args["task"]).name
    data = Path(args["data"]).expanduser()
    if not data.is_file():
        raise PromptbankError(f"The data file {data} does not exist.", hint="Check the path.")
    from engine.training.job import TrainingJob

    ctx.submit(rid, "continue", task,
               lambda between, on_rows: TrainingJob.start(
                   ctx.library, ctx.ensure_model(rid), task, config, continue_data=data,
                   between=between, on_rows=on_rows))


def resume(ctx: Context, rid: str, args: dict) -> None:
    run_id = args["run_id"]
    run = ctx.library.get_run(run_id)
    if any(run_id in run_ids(e.job.describe()) for e in ctx.scheduler.jobs
           if e.job is not None):
        raise PromptbankError(f"Run {run_id} is already running in this worker.")
    ctx.library.claim_run(run_id)  # refuses a finished run and one another process trains
    try:
        from engine.training.resume import resume_run
    except ImportError as exc:
        raise not_available("trainer") from exc
    task = ctx.task_name(run.task_id)
    tasks = tuple(ctx.task_name(r.task_id) for r in ctx.library.joint_runs(run.joint_id)
                  ) if run.joint_id is not None else ()
    ctx.submit(rid, "resume", task,
               lambda between, on_rows: resume_run(ctx.library, ctx.ensure_model(rid),
                                                   run_id, on_rows=on_rows),
               tasks)


def train_joint(ctx: Context, rid: str, args: dict) -> None:
    from engine.training.joint import JointJob

    tasks = [ctx.library.get_task(t).name for t in _names("train_joint", "tasks",
                                                            args["tasks"])]
    if len(tasks) < 2 or len(set(tasks)) != len(tasks):
        raise ProtocolError("Argument 'tasks' of 'train_joint' must name two or more "
                            "different tasks.")
    configs = [ctx.train_config(args["config"], t) for t in tasks]
    ctx.submit(rid, "train_joint", tasks[0],
                 lambda between, on_rows: JointJob.start(
                     ctx.library, ctx.ensure_model(rid), tasks, configs, on_rows=on_rows),
                 tuple(tasks))

def universal(ctx: Context, rid: str, args: dict) -> None:
    from engine.api.train_settings import UNIVERSAL_REPLAY
    from engine.training.universal import UniversalJob

    name = args["task"]
    sources = _names("universal", "sources", args["sources"])
    add = _names("universal", "add", args["add"])
    if bool(sources) == bool(add):
        raise ProtocolError("'universal' needs either 'sources' (create a universal prompt) "
                            "or 'add' (add tasks to one).")
    config = dict(args["config"])
    if add:
        config.setdefault("replay", UNIVERSAL_REPLAY)
    settings = ctx.train_config(config)
    if sources:
        def start(between, on_rows):
            return UniversalJob.create(ctx.library, ctx.ensure_model(rid), name, sources,
                                       settings, instruction=args["instruction"],
                                       on_rows=on_rows)
    else:
        def start(between, on_rows):
            return UniversalJob.update(ctx.library, ctx.ensure_model(rid), name, add,
                                       settings, between=between, on_rows=on_rows)
    ctx.submit(rid, "universal", name, start, (name, *sources, *add))

def rank_starts(ctx: Context, rid: str, args: dict) -> None:
    from engine.library.readers import read_examples
    from engine.training.config import TrainConfig
    from engine.training.probe import candidates, rank_starts

    task, data = args["task"], args["data"]
    if (task is None) == (data is None):
        raise ProtocolError("'rank_starts' needs either 'task' (a task of the library) or "
                            "'data' (a dataset file).")
    settings = {k: args[k] for k in ("method", "length") if args[k] is not None}
    config = TrainConfig(**settings)
    config.check()
    if task is not None:
        record = ctx.library.get_task(task)
        examples = ctx.library.examples(task, "train")
        template, instruction = record.input_template, record.instruction
        instruction = instruction or record.description
    else:
        path = Path(data).expanduser()
        if not path.is_file():
            raise PromptbankError(f"The data file {path} does not exist.",
                                  hint="Check the path.")
        examples = read_examples(path, input_column=args["input_column"],
                                 output_column=args["output_column"]).examples
        template, instruction = args["input_template"], args["instruction"] or ""
    host = ctx.ensure_model(rid)

    def work(should_stop: Any) -> None:
        found = candidates(ctx.library, host, config.method, config.length,
                           exclude=task or "", instruction=instruction)

        def on_progress(done: int, total: int) -> None:
            ctx.send(ProbeProgress(done=done, total=total).event(rid))
            ctx.scheduler.serve_pending()

        scores = rank_starts(host, examples, found, template=template, config=config,
                             rows=args["rows"], steps=args["steps"],
                             on_progress=on_progress)
        ctx.send(RankedStarts(method=config.method, length=config.length,
                               starts=[StartRank(**s.to_dict()) for s in scores],
                               best=scores[0].init if scores else None).event(rid))

    ctx.scheduler.run_long(rid, "rank_starts", task or str(data), work)


def watch(ctx: Context, rid: str, args: dict) -> None:
    ctx.scheduler.watch(args["job"], rid)


HANDLERS = {"train": train, "plan": plan, "continue": continue_training, "resume": resume,
            "watch": watch,
            "train_joint": train_joint, "universal": universal, "rank_starts": rank_starts}
