"""CrashBanner: a strip above the pages saying the engine stopped, with a Restart button."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class CrashBanner(QFrame):
    """Hidden until the engine crashes; shows the reason in plain words."""

    sig_restart = Signal()
    """The user pressed Restart engine."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("crashBanner")
        self.setStyleSheet("#crashBanner { background: #fee2e2; border: 1px solid #ef4444;"
                           " border-radius: 4px; } QLabel { color: #7f1d1d; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.restart = QPushButton("Restart engine")
        self.restart.setToolTip("Start the engine again; interrupted training jobs can then be "
                                "resumed from their last checkpoint in the Training tab.")
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.restart)
        self.restart.clicked.connect(self.sig_restart.emit)
        self.hide()

    def show_reason(self, reason: str) -> None:
        """Show the banner with ``reason``."""
        self.label.setText(f"<b>The engine stopped.</b> {reason[:1].upper()}{reason[1:]}. "
                           "Your library is safe.")
        self.show()
