"""Training runs: their status, config, summary and per-step metrics."""

from __future__ import annotations

from engine.clock import utc_now
from engine.errors import PromptbankError
from engine.library.records import Run, dumps, loads, run_from_row
from engine.library.schema import RUN_STATUSES
from engine.library.tasks import TaskRepository


class RunRepository(TaskRepository):
    """The ``runs`` and ``run_metrics`` tables."""

    def create_run(self, task: str, config: dict, *, parent_version_id: int | None = None,
                   kind: str = "train") -> Run:
        """Record a run that is starting."""
        with self.transaction():
            record = self.get_task(task)
            run_id = self.db["runs"].insert({
                "task_id": record.id, "kind": kind, "status": "running",
                "config": dumps(config), "parent_version_id": parent_version_id,
                "version_id": None, "summary": "{}", "started": utc_now(),
                "finished": None}).last_pk
        return self.get_run(run_id)

    def log_metrics(self, run_id: int, step: int, metrics: dict) -> None:
        """Record one step's metrics (a repeated step after a resume replaces the old one)."""
        with self.transaction():
            self.db["run_metrics"].upsert({"run_id": run_id, "step": step,
                                           "metrics": dumps(metrics), "created": utc_now()},
                                          pk=("run_id", "step"))

    def finish_run(self, run_id: int, status: str, *, version_id: int | None = None,
                   summary: dict | None = None) -> Run:
        """Set a run's final (or resumable) status, its version and summary."""
        if status not in RUN_STATUSES:
            raise PromptbankError(f"Unknown run status '{status}'.",
                                  hint=f"Use one of: {', '.join(RUN_STATUSES)}.")
        with self.transaction():
            run = self.get_run(run_id)
            self.db["runs"].update(run_id, {
                "status": status, "version_id": version_id or run.version_id,
                "summary": dumps(summary if summary is not None else run.summary),
                "finished": None if status == "running" else utc_now()})
        return self.get_run(run_id)

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
