"""Evaluations: metrics of a version (or a baseline) on one evaluation set."""

from __future__ import annotations

from engine.library.records import Evaluation, dumps, evaluation_from_row
from engine.library.tasks import TaskRepository
from engine.support.clock import utc_now


class EvaluationRepository(TaskRepository):
    """The ``evaluations`` table."""

    def add_evaluation(self, task: str, version_id: int | None, *, data_sha256: str,
                       baseline: str, metrics: dict, n: int) -> Evaluation:
        """Record an evaluation of a version (or a baseline when ``version_id`` is None)."""
        with self.transaction():
            record = self.get_task(task)
            eval_id = self.db["evaluations"].insert({
                "task_id": record.id, "version_id": version_id, "baseline": baseline,
                "data_sha256": data_sha256, "metrics": dumps(metrics), "n": n,
                "created": utc_now()}).last_pk
        return evaluation_from_row(
            self._row("SELECT * FROM evaluations WHERE id = ?", (eval_id,), ""))

    def list_evaluations(self, task: str) -> list[Evaluation]:
        """The task's evaluations, oldest first."""
        task_id = self.get_task(task).id
        return [evaluation_from_row(r) for r in self._rows(
            "SELECT * FROM evaluations WHERE task_id = ? ORDER BY id", (task_id,))]

