"""Handlers of the session ops: greeting, liveness, the model, cancelling and the jobs."""

from __future__ import annotations

from engine.api.session import (
    Bye,
    CancelAnswer,
    DevicesListing,
    JobLine,
    JobsListing,
    Pong,
    ResumableRun,
)
from engine.api.wire import Event
from engine.server.context import Context, run_ids


def hello(ctx: Context, rid: str, args: dict) -> None:
    # Asked for, the greeting is a result (the unasked one at start-up is a hello event).
    ctx.send(Event(rid, "result", ctx.hello().to_data()))


def ping(ctx: Context, rid: str, args: dict) -> None:
    ctx.send(Pong().event(rid))


def load_model(ctx: Context, rid: str, args: dict) -> None:
    host = ctx.ensure_model(rid, args["model"], args["device"], args.get("quantize"))
    ctx.send(host.info().event(rid))


def model_info(ctx: Context, rid: str, args: dict) -> None:
    ctx.send(ctx.ensure_model(rid).info().event(rid))


def shutdown(ctx: Context, rid: str, args: dict) -> None:
    ctx.scheduler.stop("the worker was shut down")
    ctx.send(Bye().event(rid))


def cancel(ctx: Context, rid: str, args: dict) -> None:
    was = ctx.scheduler.cancel(args["job"])
    ctx.send(CancelAnswer(job=args["job"], was=was).event(rid))


def jobs(ctx: Context, rid: str, args: dict) -> None:
    from engine.library.owner import RunOwner

    listing = ctx.scheduler.listing()
    active = {i for j in listing for i in run_ids(j)}
    me = RunOwner.this_process()
    resumable = [
        ResumableRun(run_id=r.id, task=ctx.task_name(r.task_id), status=r.status,
                     joint_id=r.joint_id)
        for r in ctx.library.list_runs()
        if r.status in ("running", "cancelled") and r.id not in active
        and not (r.owner and r.owner.blocks(me))
    ]
    ctx.send(JobsListing([JobLine(**line) for line in listing], resumable).event(rid))


def devices(ctx: Context, rid: str, args: dict) -> None:
    ctx.send(DevicesListing([ctx.device_line()]).event(rid))


HANDLERS = {"hello": hello, "ping": ping, "load_model": load_model, "model_info": model_info,
            "shutdown": shutdown, "cancel": cancel, "jobs": jobs, "devices": devices}
