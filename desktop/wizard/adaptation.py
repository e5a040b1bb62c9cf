"""Fast adaptation in the wizard: the training mode its data size picks (few-shot for a small
task), and a suggested starting point ranked by the engine's short probe (``rank_starts``)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from engine.api.payload import Payload
from engine.api.train_settings import FEW_SHOT_DEFAULTS, describe_mode, pick_mode
from engine.api.training import ProbeProgress, RankedStarts, StartRank


class ModeNote(QLabel):
    """Says which mode the task trains in; in few-shot mode it sets the short-run settings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.mode = "standard"

    def update_for(self, examples: int, settings) -> None:
        """Pick the mode for ``examples`` rows, say so, and adjust ``settings`` to it."""
        self.mode = pick_mode(examples)
        text = describe_mode(self.mode, examples)
        if self.mode == "few-shot":
            settings.steps.setValue(FEW_SHOT_DEFAULTS["steps"])
            settings.eval_every.setValue(FEW_SHOT_DEFAULTS["eval_every"])
            text += " Advanced shows the steps and evaluation interval it set."
        self.setText(text)

    def config(self, config: dict) -> dict:
        """``config`` in the picked mode (the engine adds the mode's early stopping)."""
        return {**config, "mode": self.mode}


class StartSuggestion(QWidget):
    """Ranks the library's prompts of the chosen method and length as starting points for the
    new task's data, shows the ranking and why, and offers the best."""

    sig_chosen = Signal(str)
    """The best start's init string (``task:NAME``, ``universal:NAME`` or ``text``)."""

    def __init__(self, session: Session, request: Callable[[], dict],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.request = request  # what to probe, read when the user asks
        self.button = QPushButton("Suggest a starting point")
        self.button.setToolTip("Trains every prompt of this method and length a few steps on "
                               "a few dozen of your rows and ranks them by the loss after.")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.ranking = QListWidget()
        self.ranking.setMaximumHeight(110)
        self.ranking.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.ranking)
        self.starts: list[StartRank] = []
        self.button.clicked.connect(self.suggest)

    def suggest(self) -> None:
        """Ask the engine to rank the starts (a long op with progress)."""
        self.button.setEnabled(False)
        self.status.setText("Probing the starting points…")
        args = {k: v for k, v in self.request().items() if v not in (None, "")}
        (self.session.op("rank_starts", args)
         .on_progress(self._progress)
         .on_success(self._ranked)
         .on_failure(self._failed)
         .run())

    def _progress(self, progress: Payload) -> None:
        if isinstance(progress, ProbeProgress):
            self.status.setText(f"Probing the starting points… step {progress.done} of "
                                f"{progress.total}")

    def _ranked(self, ranked: RankedStarts) -> None:
        self.button.setEnabled(True)
        self.starts = list(ranked.starts)
        self.ranking.clear()
        self.ranking.addItems([f"{s.init}  —  {s.why}" for s in self.starts])
        self.ranking.setVisible(bool(self.starts))
        if not self.starts:
            self.status.setText("No prompt in the library has this method and length; the "
                                "settings' start is kept.")
            return
        best = self.starts[0]
        self.status.setText(f"Best start: {best.init} (lowest loss after the probe); selected. "
                            f"{best.head_start}".strip())
        self.sig_chosen.emit(best.init)

    def _failed(self, message: str) -> None:
        self.button.setEnabled(True)
        self.status.setText(f"Could not rank the starts: {message}")
