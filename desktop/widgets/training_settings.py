"""TrainingSettings: presets (Quick / Standard / Thorough) and an Advanced section.

Presets are described by their steps and what they are for, never by minutes: how long a step
takes depends on the machine. When this library has a finished run, the blurb adds the pace
measured here. A continued version keeps its parent's method, length and start, so in
continual mode those settings are not offered; replay and the anchor are.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.widgets.formatting import format_duration
from engine.api.session import MethodInfo
from engine.api.train_settings import DEFAULT_REPLAY, TrainSettings
from engine.api.training import INITS


@dataclass(frozen=True)
class Preset:
    """A named set of training settings and what it is for."""

    steps: int
    length: int
    batch_size: int
    eval_every: int
    purpose: str


PRESETS = {
    # Deep prefixes learn far faster than input-level prompts on small models, so every preset
    # uses them; the presets differ in how long they train and how many virtual tokens they get.
    "Quick": Preset(60, 8, 8, 20, "a first check that the data teaches the task"),
    "Standard": Preset(300, 20, 8, 50, "a solid first version"),
    "Thorough": Preset(1200, 32, 8, 100, "the best quality; worth a GPU"),
}


def preset_blurb(name: str, seconds_per_step: float | None = None, *, steps: int | None = None,
                 batch_size: int | None = None, length: int | None = None) -> str:
    """What will run, in words: the preset's settings, or those that replaced them (a mode's
    steps, the user's edits), with the time it would take at ``seconds_per_step``."""
    preset = PRESETS[name]
    steps, batch_size, length = (steps or preset.steps, batch_size or preset.batch_size,
                                 length or preset.length)
    changed = (steps, batch_size, length) != (preset.steps, preset.batch_size, preset.length)
    text = (f"{name}{' (changed)' if changed else ''}: {steps:,} steps of {batch_size} "
            f"examples, {length} virtual tokens — {preset.purpose}.")
    if seconds_per_step:
        text += (f" At the pace last measured in this library ({seconds_per_step:.2g} s a "
                 f"step) about {format_duration(seconds_per_step * steps)}.")
    return text


class TrainingSettings(QWidget):
    """Picks a preset and lets the user adjust every setting under Advanced."""

    sig_changed = Signal()
    """A setting changed (the memory plan follows it)."""

    def __init__(self, task_names: list[str], methods: list[MethodInfo],
                 parent: QWidget | None = None, *, start_from: str = "", continual: str = "",
                 seconds_per_step: float | None = None) -> None:
        """``methods`` are the engine's (from its hello); ``continual`` is the parent's
        description ('prefix × 20, init text') when the settings are for continuing a version,
        empty for a new one."""
        super().__init__(parent)
        self.continual = bool(continual)
        self.seconds_per_step = seconds_per_step
        self.group = QButtonGroup(self)
        self.preset = "Quick"
        presets = QHBoxLayout()
        self.blurb = QLabel()
        self.blurb.setWordWrap(True)
        for name in PRESETS:
            button = QRadioButton(name)
            button.setToolTip(PRESETS[name].purpose)
            self.group.addButton(button)
            presets.addWidget(button)
        presets.addStretch(1)

        self._build_fields(task_names, methods)

        form = QFormLayout()
        if self.continual:
            form.addRow(QLabel(f"The new version keeps its parent's method, length and start "
                               f"({continual})."))
        else:
            for label, widget in (("Method", self.method), ("Length", self.length),
                                  ("Start from", self.init)):
                form.addRow(label, widget)
        for label, widget in (("Steps", self.steps), ("Learning rate", self.lr),
                              ("Batch size", self.batch), ("Evaluate every", self.eval_every),
                              ("Seed", self.seed), ("Checkpoint every", self.checkpoint_every)):
            form.addRow(label, widget)
        advanced = QGroupBox("Advanced")
        advanced.setCheckable(True)
        advanced.setChecked(False)
        inner = QWidget()
        inner.setLayout(form)
        box = QVBoxLayout(advanced)
        box.addWidget(inner)
        advanced.toggled.connect(inner.setVisible)
        inner.setVisible(False)
        self.advanced = advanced

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if self.continual:
            keep = QGroupBox("Keeping what it knew")
            keep_form = QFormLayout(keep)
            keep_form.addRow("Replay earlier data", self.replay)
            keep_form.addRow("Anchor to the parent", self.anchor)
            layout.addWidget(keep)
        layout.addLayout(presets)
        layout.addWidget(self.blurb)
        layout.addWidget(advanced)
        layout.addStretch(1)
        self.group.buttonClicked.connect(lambda b: self.apply_preset(b.text()))
        for box in (self.length, self.steps, self.batch, self.lr, self.replay, self.anchor):
            box.valueChanged.connect(self.sig_changed)
        for box in (self.length, self.steps, self.batch):
            box.valueChanged.connect(self._show_blurb)
        for combo in (self.method, self.init):
            combo.currentTextChanged.connect(self.sig_changed)
        self.apply_preset("Quick")
        if start_from:
            self.init.setCurrentText(f"task:{start_from}")

    def _build_fields(self, task_names: list[str], methods: list[MethodInfo]) -> None:
        """Every setting's widget, with its range and help."""
        self.method = QComboBox()
        self.method.addItems([m.name for m in methods])
        self.method.setCurrentText(TrainSettings.method)
        self.method.setToolTip(" ".join(f"{m.name}: {m.summary}." for m in methods)
                               or "The engine has not said which methods it has yet.")
        self.length = QSpinBox(minimum=1, maximum=512)
        self.length.setToolTip("Number of virtual tokens.")
        self.init = QComboBox()
        self.init.addItems([*INITS, "mix", *(f"task:{n}" for n in task_names)])
        self.init.setToolTip("How the prompt starts. auto: from the instruction, else the label "
                             "words, else the task's name and outputs (the run says which). "
                             "Or from random vocabulary, random numbers, or another task's "
                             "prompt. mix: auto mixed with the library's prompts of this "
                             "method and length, the run learning how much of each to keep.")
        self.steps = QSpinBox(minimum=1, maximum=1_000_000)
        self.lr = QDoubleSpinBox(decimals=4, minimum=0.0, maximum=10.0, singleStep=0.005)
        self.lr.setSpecialValueText("default for the method")
        defaults = ", ".join(f"{m.name} {m.default_lr:g}" for m in methods)
        self.lr.setToolTip(f"0 keeps the engine's measured default ({defaults}).")
        self.batch = QSpinBox(minimum=1, maximum=1024)
        self.eval_every = QSpinBox(minimum=0, maximum=100_000)
        self.eval_every.setToolTip("Evaluate on the held-out split every N steps (0: only at "
                                   "the end).")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.checkpoint_every = QSpinBox(minimum=0, maximum=1_000_000)
        self.checkpoint_every.setValue(TrainSettings.checkpoint_every)
        self.checkpoint_every.setSpecialValueText("only at the start and when stopped")
        self.checkpoint_every.setToolTip(
            "Save a resumable checkpoint every N steps: if the engine stops unexpectedly, "
            f"resuming loses at most N steps (default {TrainSettings.checkpoint_every}).")
        self.replay = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.9, singleStep=0.05,
                                     value=DEFAULT_REPLAY)
        self.replay.setToolTip("Share of the training rows drawn from the earlier data, so "
                               "the prompt keeps what it knew (0: new data only).")
        self.anchor = QDoubleSpinBox(decimals=0, minimum=0.0, maximum=1_000_000.0,
                                     singleStep=1000.0, value=0.0)
        self.anchor.setToolTip("Weight of a pull towards the parent prompt (the mean squared "
                               "distance over all its numbers); 0: no pull. It acts from about "
                               "10,000 (in the benchmark it cut the forgetting from 96 to 77 "
                               "points); below 1,000 it changes nothing measurable. Replay "
                               "keeps more.")

    def apply_preset(self, name: str) -> None:
        """Fill the settings from preset ``name``."""
        preset = PRESETS[name]
        for button in self.group.buttons():
            button.setChecked(button.text() == name)
        self.preset = name
        self.length.setValue(preset.length)
        self.steps.setValue(preset.steps)
        self.lr.setValue(0.0)
        self.batch.setValue(preset.batch_size)
        self.eval_every.setValue(preset.eval_every)
        self._show_blurb()

    def _show_blurb(self) -> None:
        """Say what will run: the preset as the fields now hold it (the blurb never promises
        steps the run will not do)."""
        self.blurb.setText(preset_blurb(self.preset, self.seconds_per_step,
                                        steps=self.steps.value(),
                                        batch_size=self.batch.value(),
                                        length=self.length.value()))

    def config(self) -> dict:
        """The settings as a TrainSettings-shaped dict for the engine's ``train`` or
        ``continue`` op (continual: no method, length or init; replay and anchor)."""
        config: dict = {"steps": self.steps.value(), "batch_size": self.batch.value(),
                        "eval_every": self.eval_every.value(), "seed": self.seed.value(),
                        "checkpoint_every": self.checkpoint_every.value()}
        if self.continual:
            config.update(replay=self.replay.value(), anchor=self.anchor.value())
        else:
            config.update(length=self.length.value(), init=self.init.currentText())
            if self.method.currentText():  # else the engine's default method
                config["method"] = self.method.currentText()
        if self.lr.value() > 0:
            config["lr"] = self.lr.value()
        return config


def measured_pace(runs: list) -> float | None:
    """Seconds per step of the latest finished run that recorded its time (with its
    evaluations and checkpoints where it says), or None."""
    for run in sorted(runs, key=lambda r: r.id, reverse=True):
        seconds = run.summary.get("wall_seconds", run.summary.get("train_seconds"))
        steps = run.summary.get("steps")
        if run.status == "done" and isinstance(seconds, int | float) and steps:
            return float(seconds) / int(steps)
    return None
