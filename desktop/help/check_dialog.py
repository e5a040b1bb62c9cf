"""CheckDialog: Help → Check this computer — runs ``promptbank check --quick`` in its own
process (the engine keeps running), shows each stage as it goes, then the table of figures
and targets, which Copy puts on the clipboard for a bug report."""

from __future__ import annotations

import json

from PySide6.QtCore import QProcess
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from engine.api.launch import child_env, module_command

COLUMNS = ("stage", "result", "target", "measured")


class CheckDialog(QDialog):
    """Runs the quick check and shows its verdict."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Check this computer")
        self.session = session
        self.state = QLabel("The check trains and serves a little on this computer (about "
                            "two minutes on a GPU, longer on a CPU) and compares with PEFT.")
        self.state.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.run_button = QPushButton("Run the check")
        self.run_button.clicked.connect(self.start)
        self.copy = QPushButton("Copy")
        self.copy.setToolTip("Copy the table as text, to paste into a bug report.")
        self.copy.setEnabled(False)
        self.copy.clicked.connect(self.copy_table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.process = QProcess(self)
        self.process.readyReadStandardError.connect(self._progress)
        self.process.finished.connect(self._finished)
        self.verdict: dict | None = None
        self.resize(860, 420)

    def start(self) -> None:
        """Start ``promptbank check --quick --json`` on the session's model and device."""
        argv = [*module_command("engine.cli"), "--json", "--device", self.session.device,
                "--model", self.session.model_spec, "check", "--quick", "--no-geometry"]
        self.process.setProcessEnvironment(_environment())
        self.run_button.setEnabled(False)
        self.state.setText("Starting the check…")
        self.process.start(argv[0], argv[1:])

    def _progress(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode(errors="replace")
        stages = [line for line in text.splitlines() if line.startswith("[")]
        if stages:
            self.state.setText(f"Running {stages[-1]}")

    def _finished(self, code: int, _status) -> None:
        self.run_button.setEnabled(True)
        out = bytes(self.process.readAllStandardOutput()).decode(errors="replace").strip()
        try:
            self.verdict = json.loads(out.splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            self.state.setText(f"The check did not finish (exit code {code}).")
            return
        self.show_verdict(self.verdict)

    def show_verdict(self, verdict: dict) -> None:
        """Fill the table from the check's JSON."""
        figures = verdict.get("figures", [])
        self.table.setRowCount(len(figures))
        for row, figure in enumerate(figures):
            for col, key in enumerate(("stage", "status", "target", "measured")):
                self.table.setItem(row, col, QTableWidgetItem(str(figure.get(key, ""))))
        self.table.resizeColumnsToContents()
        wrong = [f["stage"] for f in figures if f.get("status") == "fail"]
        self.state.setText("Everything works." if not wrong else
                           f"Something is wrong: {', '.join(wrong)}. Copy the table into a "
                           "bug report.")
        self.copy.setEnabled(True)

    def copy_table(self) -> None:
        """Put the table on the clipboard as tab-separated text."""
        rows = ["\t".join(COLUMNS)]
        for row in range(self.table.rowCount()):
            rows.append("\t".join(self.table.item(row, c).text() for c in range(len(COLUMNS))))
        QGuiApplication.clipboard().setText("\n".join(rows))

    def done(self, result: int) -> None:
        """Closing stops a check still running."""
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.kill()
            self.process.waitForFinished(3000)
        super().done(result)


def _environment():
    from PySide6.QtCore import QProcessEnvironment

    env = QProcessEnvironment()
    for key, value in child_env().items():
        env.insert(key, value)
    return env
