"""PlaygroundPage: one input, any task, streamed output; Compare runs three ways at once."""

from __future__ import annotations

import time

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
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.connection.operation import EngineOp
from desktop.jobs import JobTracker
from desktop.pages.base import Page
from desktop.pages.playground.history import HistoryEntry, HistoryList
from desktop.pages.playground.label_bars import LabelBars
from desktop.session import Session
from desktop.widgets.tone import rich
from engine.api.generation import Generated, Scored, Token
from engine.errors import PromptbankError
from engine.library import Task

BASE = "(base model, no prompt)"
COMPARE_TITLES = ("Base model", "Instruction as text", "Soft prompt")
BASE_BOX, INSTRUCTION_BOX, PROMPT_BOX = 0, 1, 2
PINNED_KEY = "playground/pinned"


def speed_text(tokens: int, first_token_s: float | None, total_s: float) -> str:
    """' · first token after 0.31 s · 42.0 tokens/s' (what is known of the run's speed)."""
    parts = []
    if first_token_s is not None:
        parts.append(f"first token after {first_token_s:.2f} s")
    if tokens and total_s > 0:
        parts.append(f"{tokens / total_s:.1f} tokens/s")
    return "".join(f" · {p}" for p in parts)


def instruction_text(task: Task, text: str) -> str:
    """The input with the task's instruction written in front (the hard-prompt baseline)."""
    return f"{task.instruction}\n\n{text}" if task.instruction else text


class PlaygroundPage(Page):
    """Runs the chosen task on the input; the model is never reloaded to switch tasks."""

    KEY = "playground"
    TITLE = "Playground"
    TIP = "Try tasks on one input"

    sig_finished = Signal(list)
    """A run finished (or was stopped); the outputs (one text per output box used)."""
    sig_failed = Signal(str)
    """A run failed; the message is shown on the page too."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(session, jobs, parent, settings)
        self.op: EngineOp | None = None
        self.score_ops: list[EngineOp] = []
        self.generated: Generated | None = None
        self.started, self.first_token_s = 0.0, None
        self.boxes_in_use: list[int] = [BASE_BOX]
        self.active_number: int | None = None  # the chosen task's active version
        self.pending_entry: HistoryEntry | None = None  # the run in flight, for the history
        self._build_settings_row()
        self._build_run_widgets()
        out_row = self._build_output_row()
        self._lay_out(out_row)
        self._add_shortcuts()
        self.compare.toggled.connect(self._on_compare)
        self.task_combo.currentTextChanged.connect(self._on_task_changed)
        self.pin.toggled.connect(self._on_pin)
        session.sig_library_changed.connect(self.refresh)
        self.refresh()

    def _build_settings_row(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.setToolTip("The task to run. Ctrl+1…9 pick the pinned tasks; switching "
                                   "is instant (one model serves every task).")
        self.task_combo.setMinimumWidth(220)
        self.version = QComboBox()
        self.version.setToolTip("Which version of the task answers (the active one unless you "
                                "pick another).")
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

    def _build_run_widgets(self) -> None:
        self.input = QPlainTextEdit(placeholderText="Type an input, then Ctrl+Enter.")
        self.input.setMaximumHeight(140)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the task on the input (Ctrl+Enter)")
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the generation now; the text so far is kept (Esc)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_generation)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.bars = LabelBars()
        self.history = HistoryList(self.settings)
        self.history.sig_restore.connect(self.restore)
        self.clear_history_button = QPushButton("Clear history")
        self.clear_history_button.setToolTip("Forget the runs listed here.")
        self.clear_history_button.clicked.connect(self.history.clear_history)

    def _build_output_row(self) -> QHBoxLayout:
        self.outputs = [QPlainTextEdit(readOnly=True) for _ in COMPARE_TITLES]
        self.box_bars = [LabelBars() for _ in COMPARE_TITLES]
        self.output_boxes = []
        out_row = QHBoxLayout()
        for title, edit, bars in zip(COMPARE_TITLES, self.outputs, self.box_bars, strict=True):
            box = QGroupBox(title)
            inside = QVBoxLayout(box)
            inside.addWidget(edit, 1)
            inside.addWidget(bars)
            out_row.addWidget(box)
            self.output_boxes.append(box)
        return out_row

    def _lay_out(self, out_row: QHBoxLayout) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Task"))
        top.addWidget(self.task_combo, 1)
        top.addWidget(self.version)
        top.addWidget(self.pin)
        top.addWidget(self.compare)
        # The sampling settings on a row of their own, so the page fits a laptop's width.
        sampling = QHBoxLayout()
        for name, widget in (("Max tokens", self.max_tokens), ("Temperature", self.temperature),
                             ("Top-p", self.top_p)):
            sampling.addWidget(QLabel(name))
            sampling.addWidget(widget)
        sampling.addWidget(self.stop, 1)
        main = QWidget()
        layout = QVBoxLayout(main)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(sampling)
        layout.addWidget(self.input)
        run_row = QHBoxLayout()
        run_row.addWidget(self.status, 1)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(self.run_button)
        layout.addLayout(run_row)
        layout.addWidget(self.bars)
        layout.addLayout(out_row, 1)
        history = QGroupBox("History")
        inside = QVBoxLayout(history)
        inside.addWidget(self.history, 1)
        inside.addWidget(self.clear_history_button)
        split = QSplitter(Qt.Orientation.Horizontal, objectName="playground")
        split.addWidget(main)
        split.addWidget(history)
        split.setStretchFactor(0, 1)
        split.setCollapsible(0, False)
        split.setSizes([800, 220])
        QVBoxLayout(self).addWidget(split)

    def _add_shortcuts(self) -> None:
        for keys, slot in (("Ctrl+Return", self.run), ("Escape", self.stop_generation)):
            shortcut = QShortcut(QKeySequence(keys), self, slot)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for n in range(1, 10):
            s = QShortcut(QKeySequence(f"Ctrl+{n}"), self, lambda n=n: self.pick_pinned(n))
            s.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

    @property
    def running(self) -> bool:
        """True while a generation or a scoring of this page is in flight."""
        return any(op is not None and not op.finished for op in (self.op, *self.score_ops))

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
        if self.task_combo.currentText() != current:
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
        self._drop_requests()
        task = self.current_task()
        self._clear_outputs()
        self.status.setText("Running…")
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        common = self.generation_settings()
        trained = task is not None and bool(self.session.library.list_versions(task.name))
        self.pending_entry = HistoryEntry(
            task.name if task else BASE,
            (self._pinned_version().get("version", self.active_number) if trained else None),
            text, [], self.compare.isChecked() and task is not None, common)
        if self.compare.isChecked() and task is not None:
            rows = [{"text": text}, {"text": instruction_text(task, text)}]
            self.boxes_in_use = [BASE_BOX, INSTRUCTION_BOX]
            if trained:
                rows.append({"text": text, "task": task.name, **self._pinned_version()})
                self.boxes_in_use.append(PROMPT_BOX)
            else:
                self.outputs[PROMPT_BOX].setPlainText("Not trained yet: train a version on "
                                                      "the task page to compare it here.")
        else:
            rows = [{"text": text, **({"task": task.name, **self._pinned_version()}
                                      if task else {})}]
            self.boxes_in_use = [self._single_box()]
        self._layout_outputs()
        self.started, self.first_token_s = time.monotonic(), None
        self.op = (self.session.op("generate", {"rows": rows, **common})
                   .on_token(self._on_token).on_success(self._on_generated)
                   .on_failure(self._on_failed).run())
        if task is not None and task.kind == "classify" and task.labels:
            self._score(task, text, trained)

    def _score(self, task: Task, text: str, trained: bool) -> None:
        """Label probabilities: the soft prompt's above the answer; with Compare, each way's
        under its own column (the base model, the instruction, the soft prompt)."""
        if not self.compare.isChecked():
            ways = [(None, "none")] if trained else []
        else:
            ways = [(BASE_BOX, "base"), (PROMPT_BOX, "none") if trained else (None, "")]
            if task.instruction.strip():
                ways.append((INSTRUCTION_BOX, "instruction"))
            else:
                self.box_bars[INSTRUCTION_BOX].say("The task has no instruction to score with.")
        for box, baseline in ways:
            if not baseline:
                continue
            bars = self.bars if box is None else self.box_bars[box]
            self.score_ops.append(
                self.session.op("score", {"task": task.name, "texts": [text],
                                          "baseline": baseline, **self._pinned_version()})
                .on_success(lambda scored, bars=bars: self._on_scored(bars, scored))
                .on_failure(self._on_failed).run())

    def _pinned_version(self) -> dict:
        """``{"version": N}`` when a version other than the active one is picked."""
        number = self.version.currentData()
        return {"version": number} if number is not None else {}

    def stop_generation(self) -> None:
        """Stop the running generation (the engine ends it at the next token)."""
        if self.op is not None and not self.op.finished:
            self.session.op("cancel", {"job": self.op.id}).run()
            self.status.setText("Stopping…")
            self.stop_button.setEnabled(False)

    def generation_settings(self) -> dict:
        """The per-row generation settings the engine's ``generate`` op takes."""
        stops = [part for part in (p.strip() for p in self.stop.text().split(",")) if part]
        return {"max_new_tokens": self.max_tokens.value(),
                "temperature": self.temperature.value(), "top_p": self.top_p.value(),
                "stop": stops}

    def _single_box(self) -> int:
        """Where a single run's answer goes: the soft-prompt box for a task, else the base
        model's box, so turning Compare on never shows it under the wrong title."""
        return PROMPT_BOX if self.current_task() is not None else BASE_BOX

    def _layout_outputs(self) -> None:
        on = self.compare.isChecked() and self.current_task() is not None
        single = self._single_box()
        for i, box in enumerate(self.output_boxes):
            box.setVisible(on or i == single)
            box.setTitle(COMPARE_TITLES[i] if on else "Output")

    def _on_compare(self, _on: bool) -> None:
        # The baselines' boxes never keep answers to another input or task.
        if not self.running:
            for i in (BASE_BOX, INSTRUCTION_BOX):
                if i != self._single_box():
                    self.outputs[i].clear()
        self._layout_outputs()

    def _clear_outputs(self) -> None:
        for edit in self.outputs:
            edit.clear()
        for bars in (self.bars, *self.box_bars):
            bars.clear()
        self.generated = None

    def _drop_requests(self) -> None:
        """Forget the answers still coming for an earlier run (and stop its generation)."""
        if self.op is not None and not self.op.finished:
            self.session.op("cancel", {"job": self.op.id}).run()
        for op in (self.op, *self.score_ops):
            if op is not None and not op.finished:
                op.detach()
        self.op, self.score_ops = None, []
        self.pending_entry = None
        self.run_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def _on_task_changed(self, name: str) -> None:
        self._drop_requests()
        self._clear_outputs()
        self.pin.blockSignals(True)
        self.pin.setChecked(name in self.settings.value(PINNED_KEY, [], type=list))
        self.pin.blockSignals(False)
        self._show_task_facts()
        self._fill_versions()
        self._layout_outputs()

    def _fill_versions(self) -> None:
        """The chosen task's versions, the active one first and chosen."""
        self.version.clear()
        task = self.current_task()
        versions = self.session.library.list_versions(task.name) if task else []
        # With none chosen, the engine answers with the latest.
        active = next((v for v in versions if v.id == task.active_version_id),
                      versions[-1] if versions else None)
        self.active_number = active.number if active else None
        if active:
            self.version.addItem(f"v{active.number} (active)", None)
        for v in sorted(versions, key=lambda v: -v.number):
            if v is not active:
                self.version.addItem(f"v{v.number}", v.number)
        self.version.setEnabled(len(versions) > 1)

    def _show_task_facts(self) -> None:
        task = self.current_task()
        self.pin.setEnabled(task is not None)
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

    def _on_token(self, piece: Token) -> None:
        if self.first_token_s is None:
            self.first_token_s = time.monotonic() - self.started
        edit = self._edit_for_row(piece.row)
        if edit is not None:
            edit.moveCursor(edit.textCursor().MoveOperation.End)
            edit.insertPlainText(piece.text)

    def _on_generated(self, generated: Generated) -> None:
        self.generated = generated
        for row, res in enumerate(generated.results):
            edit = self._edit_for_row(row)
            if edit is not None:
                # Every column gets the same token budget; one that used it all says so.
                cut = (f"\n[cut at {self.max_tokens.value()} tokens]"
                       if res.finish_reason == "length" else "")
                edit.setPlainText(res.text + cut)
        self.stop_button.setEnabled(False)
        self._maybe_finished()

    def _on_scored(self, bars: LabelBars, scored: Scored) -> None:
        if scored.results:
            bars.show_probs(scored.results[0].label, scored.results[0].probs)
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        """Say 'Done' only once every answer of the run is shown (text and probabilities)."""
        if self.running:
            self.status.setText("Scoring the labels…" if self.generated else "Running…")
            return
        generated = self.generated
        if generated is None:
            return
        self.run_button.setEnabled(True)
        tokens = sum(len(r.tokens) for r in generated.results)
        word = "Stopped" if generated.status == "cancelled" else "Done"
        self.status.setText(f"{word} · {tokens} tokens" + speed_text(
            tokens, self.first_token_s, time.monotonic() - self.started))
        if self.pending_entry is not None:
            entry, self.pending_entry = self.pending_entry, None
            entry.outputs = [self.outputs[box].toPlainText() for box in self.boxes_in_use]
            entry.when = time.time()
            self.history.add(entry)
        self.sig_finished.emit([r.text for r in generated.results])

    def restore(self, entry: HistoryEntry) -> None:
        """Bring back an earlier run: its task, version, settings, input and answers (shown,
        not rerun; Run answers again)."""
        self._drop_requests()
        self.set_task(entry.task)
        notes = []
        if self.task_combo.currentText() != entry.task:
            notes.append(f"The task '{entry.task}' is no longer in the library.")
        elif entry.version is not None and not self._pick_version(entry.version):
            notes.append(f"v{entry.version} is no longer in the library; the active "
                         "version is chosen.")
        self.compare.setChecked(entry.compare)
        self.max_tokens.setValue(int(entry.settings.get("max_new_tokens",
                                                        self.max_tokens.value())))
        self.temperature.setValue(float(entry.settings.get("temperature", 0.0)))
        self.top_p.setValue(float(entry.settings.get("top_p", 1.0)))
        self.stop.setText(", ".join(entry.settings.get("stop") or []))
        self.input.setPlainText(entry.text)
        self._clear_outputs()
        self.boxes_in_use = ([BASE_BOX, INSTRUCTION_BOX, PROMPT_BOX] if entry.compare
                             and self.current_task() is not None else [self._single_box()])
        for box, text in zip(self.boxes_in_use, entry.outputs, strict=False):
            self.outputs[box].setPlainText(text)
        self._layout_outputs()
        stamp = time.strftime("%d %b %H:%M", time.localtime(entry.when))
        self.status.setText(" ".join([f"From the history ({stamp}). Run answers again.",
                                      *notes]))

    def _pick_version(self, number: int) -> bool:
        """Choose version ``number`` in the picker; False when the task has none such."""
        for i in range(self.version.count()):
            data = self.version.itemData(i)
            if data == number or (data is None and self.active_number == number):
                self.version.setCurrentIndex(i)
                return True
        return False

    def _on_failed(self, message: str) -> None:
        self._drop_requests()
        self.status.setText(rich("error", message))
        self.sig_failed.emit(message)
