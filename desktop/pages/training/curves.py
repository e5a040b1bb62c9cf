"""Curves: live loss, learning-rate and eval plots (pyqtgraph), redrawn at most a few times a
second.

Every call happens on the GUI thread (job events arrive through Qt signals); the points are
copied into fresh numpy arrays at each redraw, so nothing pyqtgraph draws is ever changed
underneath it. A plot holds one curve per series name (one per task in joint training).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.run_metrics import Points
from desktop.widgets.plots import plot_widget, right_axis_view
from desktop.widgets.tone import set_tone
from engine.api.measures import label

REDRAW_MS = 250
#: Weight of the past in the smoothed loss (as TensorBoard's slider: 0 is the raw trace).
SMOOTHING = 0.9
LR_COLOUR = "#6b7280"
COLOURS = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2")


@dataclass
class CurveData:
    """What the two plots show: per series name its loss and eval points, the metric's
    name, the job's total steps, which job it is (a new key resets the axes) and the learning
    rate at each step (one schedule; empty when runs are overlaid)."""

    key: str = ""
    losses: dict[str, Points] = field(default_factory=dict)
    evals: dict[str, Points] = field(default_factory=dict)
    metric_name: str = ""
    total: int = 0
    lrs: Points = field(default_factory=list)


def smoothed(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """An exponential moving average with its start-up bias removed, so the first points
    are not pulled towards zero."""
    out = np.empty_like(values)
    mean = 0.0
    for i, value in enumerate(values):
        mean = weight * mean + (1 - weight) * value
        out[i] = mean / (1 - weight ** (i + 1))
    return out


def bounded_metric(name: str) -> bool:
    """True for metrics on a 0–1 scale (everything but a loss)."""
    return bool(name) and "loss" not in name


class Curves(QWidget):
    """A training-loss plot and an evaluation plot; ``set_data`` only marks them dirty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_plot = plot_widget("Training loss")
        self.eval_plot = plot_widget("Evaluation")
        for plot in (self.loss_plot, self.eval_plot):
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.setLabel("bottom", "step")
        self.loss_curves: dict[str, pg.PlotDataItem] = {}
        self.raw_curves: dict[str, pg.PlotDataItem] = {}
        self.eval_curves: dict[str, pg.PlotDataItem] = {}
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Draw the training loss on a logarithmic axis (late, small "
                                  "improvements stay visible).")
        self.log_scale.toggled.connect(lambda on: self.loss_plot.setLogMode(y=on))
        # The schedule (warm-up, decay) on its own right-hand axis, behind the loss: where the
        # loss flattens is read against the rate that was used there.
        self.lr_view = right_axis_view(self.loss_plot, "learning rate", LR_COLOUR)
        self.lr_curve = pg.PlotDataItem(pen=pg.mkPen(LR_COLOUR, width=1,
                                                     style=Qt.PenStyle.DashLine))
        self.lr_view.addItem(self.lr_curve)
        self.show_lr = QCheckBox("Learning rate")
        self.show_lr.setChecked(True)
        self.show_lr.setToolTip("Draw the learning rate of each step (dashed, right-hand "
                                "axis) over the loss.")
        self.show_lr.toggled.connect(self._show_lr_axis)
        note = QLabel("Loss: smoothed, with the raw values faint behind it.")
        set_tone(note, "muted")
        controls = QHBoxLayout()
        controls.addWidget(note, 1)
        controls.addWidget(self.show_lr)
        controls.addWidget(self.log_scale)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.eval_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addLayout(plots, 1)
        self.shown_key = ""
        self._pending: CurveData | None = None
        # Training sends an event per step; redrawing on each would starve the event loop.
        self.timer = QTimer(self, interval=REDRAW_MS, singleShot=True)
        self.timer.timeout.connect(self._redraw)

    def set_data(self, data: CurveData) -> None:
        """Show ``data`` at the next redraw (coalesces bursts of updates)."""
        self._pending = CurveData(data.key, {k: list(v) for k, v in data.losses.items()},
                                  {k: list(v) for k, v in data.evals.items()},
                                  data.metric_name, data.total, list(data.lrs))
        if not self.timer.isActive():
            self.timer.start()

    def flush(self) -> None:
        """Redraw now (before a screenshot, or when a test checks the plots)."""
        self.timer.stop()
        self._redraw()

    def _redraw(self) -> None:
        data, self._pending = self._pending, None
        if data is None:
            return
        self._draw(self.loss_plot, self.raw_curves, data.losses, symbol=False, faint=True)
        self._draw(self.loss_plot, self.loss_curves, data.losses, symbol=False, smooth=True)
        self._draw(self.eval_plot, self.eval_curves, data.evals, symbol=True)
        self.lr_curve.setData(np.array([s for s, _ in data.lrs], dtype=float),
                              np.array([v for _, v in data.lrs], dtype=float))
        self._show_lr_axis(self.show_lr.isChecked())
        name = label(data.metric_name)
        self.eval_plot.set_title(f"Evaluation ({name})" if name else "Evaluation")
        if data.key != self.shown_key:
            self.shown_key = data.key
            self._reset_axes(data)
        self._bound_metric_axis(data.metric_name)

    def _show_lr_axis(self, on: bool) -> None:
        """The rate and its axis show when asked for and when there is a rate to show."""
        visible = on and bool(self.lr_curve.xData is not None and len(self.lr_curve.xData))
        self.lr_curve.setVisible(visible)
        self.loss_plot.showAxis("right", visible)

    def _reset_axes(self, data: CurveData) -> None:
        """A new job gets fresh axes: steps 0–total, losses fitted to its own values."""
        for plot in (self.loss_plot, self.eval_plot):
            plot.enableAutoRange(axis="y")
            if data.total:
                plot.setXRange(0, data.total, padding=0.02)
            else:
                plot.enableAutoRange(axis="x")

    def _bound_metric_axis(self, metric_name: str) -> None:
        """A 0–1 metric (accuracy, F1…) is drawn on exactly 0–1; a loss fits its values."""
        view = self.eval_plot.getViewBox()
        if bounded_metric(metric_name):
            view.setLimits(yMin=0.0, yMax=1.0)
            view.setYRange(0.0, 1.0, padding=0)
        else:
            view.setLimits(yMin=None, yMax=None)
            view.enableAutoRange(axis="y")

    def _draw(self, plot: pg.PlotWidget, curves: dict[str, pg.PlotDataItem],
              series: dict[str, Points], *, symbol: bool, faint: bool = False,
              smooth: bool = False) -> None:
        for name in [n for n in curves if n not in series]:
            plot.removeItem(curves.pop(name))
        for i, (name, points) in enumerate(series.items()):
            curve = curves.get(name)
            if curve is None:
                colour = pg.mkColor(COLOURS[i % len(COLOURS)])
                if faint:
                    colour.setAlpha(70)
                style = {"symbol": "o", "symbolSize": 6, "symbolBrush": colour} if symbol else {}
                curve = curves[name] = plot.plot(pen=pg.mkPen(colour, width=1 if faint else 2),
                                                 name=None if faint else name, **style)
            steps = np.array([s for s, _ in points], dtype=float)
            values = np.array([v for _, v in points], dtype=float)
            curve.setData(steps, smoothed(values) if smooth else values)
