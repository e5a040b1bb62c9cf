"""``promptbank runs``: every training run with its state and what can be done with it (the
exact command that resumes it); ``runs discard`` ends one that will not be resumed."""

from __future__ import annotations

import argparse

from engine.commands._common import emit
from engine.commands.library import open_library

#: The states a run can go on from, at its last checkpoint.
RESUMABLE = ("cancelled", "interrupted")


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="training runs: state, resumability, the resume command")
    runs.add_argument("--task", default=None, help="only this task's runs")
    runs.set_defaults(func=cmd_runs)
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    discard = rsub.add_parser("discard", help="end a run that will not be resumed (its "
                              "checkpoint is deleted)")
    discard.add_argument("run_id", type=int)
    discard.set_defaults(func=cmd_discard)


def cmd_runs(args: argparse.Namespace) -> int:
    lib = open_library(args)
    rows = []
    for run in lib.list_runs(args.task):
        task = lib.get_task_by_id(run.task_id).name
        state = lib.run_state(run)
        rows.append({"run_id": run.id, "task": task, "kind": run.kind, "state": state,
                     "started": run.started, "resumable": state in RESUMABLE,
                     "resume": f"promptbank train {task} --resume {run.id}"
                     if state in RESUMABLE else None, "outcome": _outcome(lib, run, state)})
    lines = [f"{'run':>4}  {'task':<20} {'kind':<9} {'state':<12} outcome"]
    lines += [f"{r['run_id']:>4}  {r['task']:<20} {r['kind']:<9} {r['state']:<12} "
              f"{r['outcome']}" for r in rows]
    text = "\n".join(lines) if rows else "No training runs yet."
    emit(args, {"runs": rows}, text)
    return 0


def _outcome(lib, run, state: str) -> str:
    if state == "done" and run.version_id is not None:
        return f"saved version {lib.version_by_id(run.version_id).number}"
    if state in RESUMABLE:
        why = run.summary.get("interrupted") or ("stopped" if state == "cancelled"
                                                 else "its process is gone")
        return (f"{why}; resume: promptbank train {lib.get_task_by_id(run.task_id).name} "
                f"--resume {run.id} (or: promptbank runs discard {run.id})")
    if state == "failed":
        return str(run.summary.get("error") or "failed")
    return f"by {run.owner.describe()}" if run.owner else ""


def cmd_discard(args: argparse.Namespace) -> int:
    lib = open_library(args)
    run = lib.discard_run(args.run_id)
    emit(args, {"run_id": run.id, "state": run.status},
         f"Run {run.id} was discarded; its checkpoint is deleted.")
    return 0
