"""PlaygroundPage: one input, any task, streamed output; Compare runs three ways at once."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.operation import EngineOp
from desktop.playground.label_bars import LabelBars
from desktop.session import Session
from engine.errors import PromptbankError
from engine.library import Task

BASE = "(base model, no prompt)"
COMPARE_TITLES = ("Base model", "Instruction as text", "Soft prompt")
PINNED_KEY = "playground/pinned"


def instruction_text(task: Task, text: str) -> str:
    """The input with the task's instruction written in front (the hard-prompt baseline)."""
    return f"{task.instruction}\n\n{text}" if task.instruction else text


class PlaygroundPage(QWidget):
    """Runs the chosen task on the input; the model is never reloaded to switch tasks."""

    sig_finished = Signal(list)
    """A run finished; the outputs (one text per output box shown)."""
    sig_failed = Signal(str)
    """A run failed; the message is shown on the page too."""

    def __init__(self, session: Session, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings or QSettings()
        self.op: EngineOp | None = None
        self.boxes_in_use: list[int] = [0]
        self.task_combo = QComboBox()
        self.task_combo.setToolTip("The task to run. Ctrl+1…9 pick the pinned tasks; switching "
                                   "is instant (one model serves every task).")
        self.task_combo.setMinimumWidth(220)
        self.pin = QCheckBox("Pinned")
        self.pin.setToolTip("Pinned tasks get the shortcuts Ctrl+1…9 in this page's order.")
        self.compare = QCheckBox("Compare")
        self.compare.setToolTip("Run the input three ways side by side: the base model, the "
                                "task's instruction as text, and the soft prompt.")
        self.max_tokens = QSpinBox(minimum=1, maximum=4096, value=64)
        self.max_tokens.setToolTip("Most tokens to generate.")
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, value=0.0)
        self.temperature.setToolTip("0 is greedy (the same output every time).")
        self.top_p = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, value=1.0)
        self.top_p.setToolTip("Nucleus sampling: keep the smallest set of tokens whose "
                              "probabilities add up to this (used when temperature > 0).")
        self.stop = QLineEdit(placeholderText="stop strings, comma-separated")
        self.stop.setToolTip("Generation ends when the output contains one of these strings.")
        self.input = QPlainTextEdit(placeholderText="Type an input, then Ctrl+Enter.")
        self.input.setMaximumHeight(140)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the task on the input (Ctrl+Enter)")
        self.run_button.clicked.connect(self.run)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.bars = LabelBars()
        self.outputs = [QPlainTextEdit(readOnly=True) for _ in COMPARE_TITLES]
        self.output_boxes = []
        out_row = QHBoxLayout()
        for title, edit in zip(COMPARE_TITLES, self.outputs, strict=True):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(edit)
            out_row.addWidget(box)
            self.output_boxes.append(box)

        top = QHBoxLayout()
        top.addWidget(QLabel("Task"))
        top.addWidget(self.task_combo, 1)
        top.addWidget(self.pin)
        top.addWidget(self.compare)
        top.addWidget(QLabel("Max tokens"))
        top.addWidget(self.max_tokens)
        top.addWidget(QLabel("Temperature"))
        top.addWidget(self.temperature)
        top.addWidget(QLabel("Top-p"))
        top.addWidget(self.top_p)
        top.addWidget(self.stop)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.input)
        run_row = QHBoxLayout()
        run_row.addWidget(self.status, 1)
        run_row.addWidget(self.run_button)
        layout.addLayout(run_row)
        layout.addWidget(self.bars)
        layout.addLayout(out_row, 1)

        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self, self.run)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for n in range(1, 10):
            s = QShortcut(QKeySequence(f"Ctrl+{n}"), self, lambda n=n: self.pick_pinned(n))
            s.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.compare.toggled.connect(self._layout_outputs)
        self.task_combo.currentTextChanged.connect(self._on_task_changed)
        self.pin.toggled.connect(self._on_pin)
        session.sig_library_changed.connect(self.refresh)
        self.refresh()
        self._layout_outputs()

    def refresh(self) -> None:
        """Re-read the task list, keeping the chosen task."""
        current = self.task_combo.currentText()
        self.task_combo.blockSignals(True)
        self.task_combo.clear()
        self.task_combo.addItem(BASE)
        self.task_combo.addItems(sorted(t.name for t in self.session.library.list_tasks()))
        index = self.task_combo.findText(current)
        self.task_combo.setCurrentIndex(max(index, 0))
        self.task_combo.blockSignals(False)
        self._on_task_changed(self.task_combo.currentText())

    def set_task(self, name: str) -> None:
        """Switch to task ``name`` (no reload: the engine serves every task)."""
        index = self.task_combo.findText(name)
        if index < 0:
            self.refresh()
            index = self.task_combo.findText(name)
        if index >= 0:
            self.task_combo.setCurrentIndex(index)

    def pinned(self) -> list[str]:
        """Pinned task names in order (the first nine tasks when none are pinned)."""
        names = [self.task_combo.itemText(i) for i in range(1, self.task_combo.count())]
        pinned = [n for n in self.settings.value(PINNED_KEY, [], type=list) if n in names]
        return pinned or names[:9]

    def pick_pinned(self, n: int) -> None:
        """Switch to the ``n``-th pinned task (Ctrl+n)."""
        pinned = self.pinned()
        if 0 < n <= len(pinned):
            self.set_task(pinned[n - 1])

    def current_task(self) -> Task | None:
        """The chosen task, or None for the base model."""
        name = self.task_combo.currentText()
        if name in ("", BASE):
            return None
        try:
            return self.session.library.get_task(name)
        except PromptbankError:
            return None

    def run(self) -> None:
        """Run the input through the chosen task (and, with Compare, two baselines)."""
        text = self.input.toPlainText().strip()
        if not text:
            self.status.setText("Type an input first.")
            return
        if self.op is not None and not self.op.finished:
            self.op.detach()
        task = self.current_task()
        for edit in self.outputs:
            edit.clear()
        self.bars.clear()
        self.status.setText("Running…")
        self.run_button.setEnabled(False)
        common = self.generation_settings()
        trained = task is not None and bool(self.session.library.list_versions(task.name))
        if self.compare.isChecked() and task is not None:
            rows = [{"text": text}, {"text": instruction_text(task, text)}]
            self.boxes_in_use = [0, 1]
            if trained:
                rows.append({"text": text, "task": task.name})
                self.boxes_in_use.append(2)
            else:
                self.outputs[2].setPlainText("Not trained yet: train a version on the task "
                                             "page to compare it here.")
        else:
            rows = [{"text": text, **({"task": task.name} if task else {})}]
            self.boxes_in_use = [2 if self.compare.isChecked() else 0]
        self.op = (self.session.op("generate", {"rows": rows, **common})
                   .on_token(self._on_token).on_success(self._on_generated)
                   .on_failure(self._on_failed).run())
        if trained and task.kind == "classify" and task.labels:
            self.session.op("score", {"task": task.name, "texts": [text]}).on_success(
                self._on_scored).on_failure(self._on_failed).run()

    def generation_settings(self) -> dict:
        """The per-row generation settings the engine's ``generate`` op takes."""
        stops = [part for part in (p.strip() for p in self.stop.text().split(",")) if part]
        return {"max_new_tokens": self.max_tokens.value(),
                "temperature": self.temperature.value(), "top_p": self.top_p.value(),
                "stop": stops}

    def _layout_outputs(self) -> None:
        on = self.compare.isChecked()
        for i, box in enumerate(self.output_boxes):
            box.setVisible(on or i == 0)
        self.output_boxes[0].setTitle("Base model" if on else "Output")

    def _on_task_changed(self, name: str) -> None:
        task = self.current_task()
        self.pin.blockSignals(True)
        self.pin.setEnabled(task is not None)
        self.pin.setChecked(name in self.settings.value(PINNED_KEY, [], type=list))
        self.pin.blockSignals(False)
        self.bars.clear()
        if task is not None:
            self.status.setText(f"{task.kind} · {task.description}" if task.description
                                else task.kind)
        else:
            self.status.setText("The base model without any prompt.")

    def _on_pin(self, on: bool) -> None:
        name = self.task_combo.currentText()
        pinned = [n for n in self.settings.value(PINNED_KEY, [], type=list) if n != name]
        if on:
            pinned.append(name)
        self.settings.setValue(PINNED_KEY, pinned)

    def _edit_for_row(self, row: int) -> QPlainTextEdit | None:
        boxes = self.boxes_in_use
        return self.outputs[boxes[row]] if 0 <= row < len(boxes) else None

    def _on_token(self, data: dict) -> None:
        edit = self._edit_for_row(int(data.get("row", 0)))
        if edit is not None:
            edit.moveCursor(edit.textCursor().MoveOperation.End)
            edit.insertPlainText(str(data.get("text", "")))

    def _on_generated(self, data: dict) -> None:
        results = data.get("results", [])
        texts = []
        for row, res in enumerate(results):
            edit = self._edit_for_row(row)
            text = str(res.get("text", ""))
            if edit is not None:
                edit.setPlainText(text)
            texts.append(text)
        self.run_button.setEnabled(True)
        tokens = sum(_count(r.get("tokens")) for r in results)
        self.status.setText(f"Done · {tokens} tokens")
        self.sig_finished.emit(texts)

    def _on_scored(self, data: dict) -> None:
        results = data.get("results") or []
        if results:
            self.bars.show_probs(str(results[0].get("label", "")),
                                 dict(results[0].get("probs", {})))

    def _on_failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.status.setText(f"<span style='color:#b91c1c'>{message}</span>")
        self.sig_failed.emit(message)


def _count(tokens) -> int:
    """Number of generated tokens, whether the engine sent the ids or a count."""
    if isinstance(tokens, list):
        return len(tokens)
    return int(tokens or 0)
