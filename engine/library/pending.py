"""Training jobs that were queued (or running) when the desktop last stopped, kept in the
library folder so that a quit, a crash or a restart does not drop them: the desktop writes
the list whenever it changes and queues them again when it next starts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.support import safe_json
from engine.support.fileio import atomic_write_bytes

PENDING_FILE = "pending_jobs.json"
#: The worker ops a pending job may name (a running job comes back as ``resume`` of its run).
OPS = ("train", "continue", "train_joint", "resume")


@dataclass
class PendingJob:
    """One job to queue again: the worker op, its arguments and the task it is for."""

    op: str
    task: str
    args: dict = field(default_factory=dict)


class PendingJobs:
    """The pending-jobs file of a library folder (written whole, by one rename)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / PENDING_FILE

    def read(self) -> list[PendingJob]:
        """The jobs in the file; entries that are not jobs (a damaged or foreign file) are
        left out, never raised: losing a queue entry must not keep the app from starting."""
        try:
            data = safe_json.loads(self.path.read_bytes())
        except (OSError, safe_json.JsonRefused):
            return []
        jobs = data.get("jobs") if isinstance(data, dict) else None
        return [PendingJob(e["op"], e["task"], e["args"]) for e in jobs or []
                if isinstance(e, dict) and e.get("op") in OPS and isinstance(e.get("task"), str)
                and isinstance(e.get("args"), dict)]

    def write(self, jobs: list[PendingJob]) -> None:
        """Replace the list (an empty list removes the file)."""
        if not jobs:
            self.path.unlink(missing_ok=True)
            return
        payload = {"jobs": [asdict(j) for j in jobs]}
        atomic_write_bytes(self.path, json.dumps(payload, indent=1).encode())
