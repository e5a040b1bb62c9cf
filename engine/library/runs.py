"""Training runs: their status, config, summary, per-step metrics and owning process.

A run is created owned by the process that creates it; ``claim_run`` takes it over for a
resume (refused while a live process holds it) and any final status releases it.
"""

from __future__ import annotations

import shutil

from engine.errors import PromptbankError
from engine.library.owner import RunOwner
from engine.library.records import Run, dumps, loads, run_from_row
from engine.library.schema import RUN_STATUSES
from engine.library.tasks import TaskRepository
from engine.support.clock import utc_now


class RunRepository(TaskRepository):
    """The ``runs`` and ``run_metrics`` tables."""

    def create_run(self, task: str, config: dict, *, parent_version_id: int | None = None,
                   kind: str = "train") -> Run:
        """Record a run that is starting, owned by this process."""
        with self.transaction():
            record = self.get_task(task)
            run_id = self.db["runs"].insert({
                "task_id": record.id, "kind": kind, "status": "running",
                "config": dumps(config), "parent_version_id": parent_version_id,
                "version_id": None, "summary": "{}", "started": utc_now(),
                "finished": None, **_owner_columns(RunOwner.this_process())}).last_pk
        return self.get_run(run_id)

    def create_joint_runs(self, runs: list[tuple[str, dict]]) -> list[Run]:
        """Record the runs of one joint job, (task, config) each, in one transaction; each
        run's ``joint_id`` is the first run's id."""
        with self.transaction():
            created = [self.create_run(task, config) for task, config in runs]
            for run in created:
                self.db["runs"].update(run.id, {"joint_id": created[0].id})
        return [self.get_run(run.id) for run in created]

    def joint_runs(self, joint_id: int) -> list[Run]:
        """The runs of one joint job, in the order they were created."""
        return [run_from_row(r) for r in self._rows(
            "SELECT * FROM runs WHERE joint_id = ? ORDER BY id", (joint_id,))]

    def claim_run(self, run_id: int, owner: RunOwner | None = None) -> Run:
        """Make ``owner`` (default: this process) the one process training a run.

        Refused for a finished run and while another live process holds it; the claim of a
        process that is gone (on this host) is taken over.
        """
        claimant = owner or RunOwner.this_process()
        with self.transaction():
            run = self.get_run(run_id)
            if run.status == "done":
                raise PromptbankError(f"Run {run_id} has already finished.",
                                      hint="Start a new run with 'train' or 'continue'.")
            if run.owner is not None and run.owner.blocks(claimant):
                raise PromptbankError(
                    f"Run {run_id} is being trained by {run.owner.describe()}.",
                    hint="Wait for it to end, or cancel it there; a run is trained by one "
                    "process at a time.")
            self.db["runs"].update(run_id, _owner_columns(claimant))
        return self.get_run(run_id)

    def release_run(self, run_id: int, owner: RunOwner | None = None) -> None:
        """Give up ``owner``'s (default: this process's) hold on a run; another's stays."""
        releasing = owner or RunOwner.this_process()
        with self.transaction():
            held = self.get_run(run_id).owner
            if held is not None and held.same_process(releasing):
                self.db["runs"].update(run_id, _owner_columns(None))

    def log_metrics(self, run_id: int, step: int, metrics: dict, *, merge: bool = False) -> None:
        """Record one step's metrics: a repeated step after a resume replaces the old one;
        ``merge`` adds to what the step already logged (an evaluation after its loss)."""
        with self.transaction():
            if merge:
                rows = self._rows("SELECT metrics FROM run_metrics WHERE run_id = ? AND step = ?",
                                  (run_id, step))
                metrics = {**(loads(rows[0]["metrics"], {}) if rows else {}), **metrics}
            self.db["run_metrics"].upsert({"run_id": run_id, "step": step,
                                           "metrics": dumps(metrics), "created": utc_now()},
                                          pk=("run_id", "step"))

    def finish_run(self, run_id: int, status: str, *, version_id: int | None = None,
                   summary: dict | None = None) -> Run:
        """Set a run's final (or resumable) status, its version and summary; any status but
        ``running`` releases the run's owner."""
        if status not in RUN_STATUSES:
            raise PromptbankError(f"Unknown run status '{status}'.",
                                  hint=f"Use one of: {', '.join(RUN_STATUSES)}.")
        with self.transaction():
            run = self.get_run(run_id)
            columns = {"status": status, "version_id": version_id or run.version_id,
                       "summary": dumps(summary if summary is not None else run.summary),
                       "finished": None if status == "running" else utc_now()}
            if status != "running":
                columns.update(_owner_columns(None))
            self.db["runs"].update(run_id, columns)
        return self.get_run(run_id)

    def run_state(self, run: Run) -> str:
        """A run's state as a person needs it: ``running`` only while a live process trains
        it; one whose process is gone is ``interrupted`` (resumable, like ``cancelled``)."""
        if run.status == "running" and run.owner is not None and run.owner.is_alive():
            return "running"
        return "interrupted" if run.status == "running" else run.status

    def discard_run(self, run_id: int) -> Run:
        """End a run that will not be resumed: its checkpoint is deleted and it is marked
        failed, saying so. Refused while a live process trains it or once it is done."""
        run = self.get_run(run_id)
        if self.run_state(run) == "running":
            raise PromptbankError(f"Run {run_id} is being trained by {run.owner.describe()}.",
                                  hint="Cancel it there first.")
        if run.status == "done":
            raise PromptbankError(f"Run {run_id} finished and saved its version; there is "
                                  "nothing to discard.", hint="Delete the version instead.")
        run = self.finish_run(run_id, "failed",
                              summary={**run.summary, "error": "discarded by the user"})
        shutil.rmtree(self.checkpoint_dir(run_id), ignore_errors=True)
        return run

    def get_run(self, run_id: int) -> Run:
        """The run with this id."""
        return run_from_row(self._row("SELECT * FROM runs WHERE id = ?", (run_id,),
                              f"There is no run with id {run_id}."))

    def list_runs(self, task: str | None = None) -> list[Run]:
        """Runs of one task (or all), newest first."""
        if task is None:
            return [run_from_row(r) for r in self._rows("SELECT * FROM runs ORDER BY id DESC")]
        task_id = self.get_task(task).id
        return [run_from_row(r) for r in self._rows(
            "SELECT * FROM runs WHERE task_id = ? ORDER BY id DESC", (task_id,))]

    def run_metrics(self, run_id: int) -> list[dict]:
        """A run's per-step metrics in step order, each with its ``step``."""
        return [{"step": r["step"], **loads(r["metrics"], {})} for r in self._rows(
            "SELECT step, metrics FROM run_metrics WHERE run_id = ? ORDER BY step", (run_id,))]


def _owner_columns(owner: RunOwner | None) -> dict:
    """The ``runs`` columns that hold ``owner`` (all NULL for none)."""
    if owner is None:
        return {"owner_pid": None, "owner_host": None, "owner_since": None,
                "owner_token": None}
    return {"owner_pid": owner.pid, "owner_host": owner.host, "owner_since": owner.since,
            "owner_token": owner.token}
