"""The Playground's history: the last runs (task, version, input, answer), kept across
restarts in the application's settings, any of which can be brought back with a click."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

HISTORY_KEY = "playground/history"
KEEP = 50


@dataclass
class HistoryEntry:
    """One run of the Playground: what ran it and what it answered."""

    task: str
    version: int | None
    text: str
    outputs: list[str]
    compare: bool = False
    settings: dict = field(default_factory=dict)
    when: float = 0.0

    def title(self) -> str:
        """'14:02 · spam v2' over 'Win a free… → ham' (two short lines for the list)."""
        stamp = time.strftime("%H:%M", time.localtime(self.when))
        version = f" v{self.version}" if self.version is not None else ""
        answer = self.outputs[-1] if self.outputs else ""
        return f"{stamp} · {self.task}{version}\n{_short(self.text)} → {_short(answer, 12)}"


def _short(text: str, width: int = 18) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _entry(raw: object) -> HistoryEntry | None:
    """An entry from its stored form (None for anything another version wrote)."""
    try:
        return HistoryEntry(**raw) if isinstance(raw, dict) else None
    except TypeError:
        return None


class HistoryList(QListWidget):
    """The newest runs first; activating one (double-click or Enter) brings it back."""

    sig_restore = Signal(object)
    """Bring back a run: the ``HistoryEntry`` chosen."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setToolTip("Earlier runs, newest first. Double-click (or Enter) to bring one "
                        "back: its task, version, settings, input and answer.")
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.entries: list[HistoryEntry] = []
        self.itemActivated.connect(self._activated)
        self._load()

    def add(self, entry: HistoryEntry) -> None:
        """Record a finished run (the oldest beyond the last 50 are dropped)."""
        self.entries = [entry, *self.entries][:KEEP]
        self.settings.setValue(HISTORY_KEY, json.dumps([asdict(e) for e in self.entries]))
        self._fill()

    def clear_history(self) -> None:
        """Forget every recorded run."""
        self.entries = []
        self.settings.remove(HISTORY_KEY)
        self._fill()

    def _load(self) -> None:
        try:
            raw = json.loads(str(self.settings.value(HISTORY_KEY, "[]")))
        except ValueError:
            raw = []  # a damaged setting costs the history, never the page
        self.entries = [e for e in map(_entry, raw if isinstance(raw, list) else []) if e]
        self._fill()

    def _fill(self) -> None:
        self.clear()
        for entry in self.entries:
            item = QListWidgetItem(entry.title())
            item.setToolTip(f"{entry.text}\n\n→ " + "\n→ ".join(entry.outputs))
            item.setData(Qt.ItemDataRole.UserRole, entry)
            self.addItem(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.sig_restore.emit(item.data(Qt.ItemDataRole.UserRole))
