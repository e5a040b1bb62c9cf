"""LabelBars: one horizontal bar per label showing its probability."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QProgressBar, QWidget


class LabelBars(QWidget):
    """Probability bars for a classification result; the top label is named above them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.bars: dict[str, QProgressBar] = {}
        self.top = QLabel()

    def show_probs(self, label: str, probs: dict[str, float]) -> None:
        """Replace the bars with ``probs`` (label → probability), highest first."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.bars = {}
        self.top = QLabel(f"<b>{label}</b>")
        self.form.addRow("Prediction", self.top)
        for name, p in sorted(probs.items(), key=lambda kv: -kv[1]):
            bar = QProgressBar(maximum=1000, value=round(1000 * p))
            bar.setFormat(f"{100 * p:.1f}%")
            self.bars[name] = bar
            self.form.addRow(name, bar)

    def say(self, text: str) -> None:
        """Replace the bars with a sentence (why there are none)."""
        self.clear()
        self.form.addRow(QLabel(text))

    def clear(self) -> None:
        """Remove every bar."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.bars = {}
