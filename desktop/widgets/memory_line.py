"""MemoryLine: under the training settings, what the run will need in memory on the loaded
model's device (the engine's ``plan``), refreshed as the settings change."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from desktop.session import Session
from desktop.widgets.tone import set_tone
from engine.api.training import MemoryPlan

GB = float(1 << 30)


def summary(plan: MemoryPlan) -> str:
    """One or two lines: the total against the free memory, and how it is made to fit."""
    head = (f"Memory: about {plan.total / GB:.1f} GB of {plan.free / GB:.1f} GB free on "
            f"{plan.device} (weights {plan.weights / GB:.1f} GB, activations "
            f"{plan.activations_per_row / 2**20:.0f} MB a row).")
    return f"{head} {'Fits' if plan.fits else 'Does not fit'}: {plan.advice}"


class MemoryLine(QLabel):
    """Asks the engine for the plan of ``tasks`` with ``config()`` a moment after a change."""

    def __init__(self, session: Session, tasks: list[str], config: Callable[[], dict],
                 parent: QWidget | None = None) -> None:
        super().__init__("Memory: asking the engine…", parent)
        self.session = session
        self.tasks = tasks
        self.config = config
        self.plan: MemoryPlan | None = None
        self.setWordWrap(True)
        self._timer = QTimer(self, singleShot=True, interval=400)
        self._timer.timeout.connect(self._ask)

    def refresh(self) -> None:
        """Ask again soon (settings typed quickly cost one request)."""
        self._timer.start()

    def _ask(self) -> None:
        if not self.tasks or self.session.model is None:
            self.setText("Memory: shown once the model is loaded.")
            return
        self.session.op("plan", {"tasks": self.tasks, "config": self.config()}) \
            .on_success(self._show).on_failure(self._failed).run()

    def _show(self, plan: MemoryPlan) -> None:
        self.plan = plan
        set_tone(self, None if plan.fits else "error")
        self.setText(summary(plan))
        self.setToolTip(plan.describe())

    def _failed(self, message: str) -> None:
        set_tone(self, None)
        self.setText(f"Memory: not planned ({message})")
