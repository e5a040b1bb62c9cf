"""TaskSummary: one line of facts per task (active version, its metric, fit) for lists."""

from __future__ import annotations

from dataclasses import dataclass

from desktop.session import Session
from engine.api.measures import headline_metric
from engine.errors import PromptbankError
from engine.library import Task, Version


@dataclass
class TaskSummary:
    """What the task list shows for one task."""

    name: str
    kind: str
    description: str
    version: int | None
    metric: str
    fit_problem: str

    @property
    def caption(self) -> str:
        """The second line under the name: kind, active version and metric."""
        parts = [self.kind]
        parts.append(f"v{self.version}" if self.version else "not trained yet")
        if self.metric:
            parts.append(self.metric)
        return " · ".join(parts)


def active_version(session: Session, task: Task) -> Version | None:
    """The task's active version (else its latest), or None if it has none."""
    try:
        return session.library.get_version(task.name)
    except PromptbankError:
        return None


def summarize_tasks(session: Session) -> list[TaskSummary]:
    """One summary per task in the library, sorted by name."""
    out = []
    for task in sorted(session.library.list_tasks(), key=lambda t: t.name.lower()):
        version = active_version(session, task)
        out.append(TaskSummary(
            name=task.name, kind=task.kind, description=task.description,
            version=version.number if version else None,
            metric=headline_metric(version.metrics) if version else "",
            fit_problem=session.fit_problem(version),
        ))
    return out
