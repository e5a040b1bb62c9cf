"""Resuming any interrupted or cancelled run: a task's run, a universal prompt's run, or the
runs of a joint job (any of its runs resumes the whole job)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.model.chat import OnRows
from engine.training.job import TrainingJob
from engine.training.joint import JointJob
from engine.training.universal import UniversalJob

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost


def resume_run(library: Library, host: ModelHost, run_id: int, *, on_rows: OnRows | None = None):
    """The job that continues run ``run_id`` from its last checkpoint (claimed for this
    process; a finished run, or one another live process trains, is refused)."""
    run = library.get_run(run_id)
    if run.joint_id is not None:
        return JointJob.resume(library, host, run_id, on_rows=on_rows)
    if run.kind == "universal":
        return UniversalJob.resume(library, host, run_id, on_rows=on_rows)
    return TrainingJob.resume(library, host, run_id, on_rows=on_rows)
