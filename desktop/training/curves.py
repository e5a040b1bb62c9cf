"""Curves: live loss and eval plots (pyqtgraph), redrawn at most a few times a second."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QWidget

REDRAW_MS = 250
SERIES_COLOURS = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2")


class Curves(QWidget):
    """A training-loss plot and an evaluation plot; ``set_data`` only marks them dirty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.eval_plot = pg.PlotWidget(title="Evaluation")
        for plot in (self.loss_plot, self.eval_plot):
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen("#2563eb", width=2))
        self.eval_curve = self.eval_plot.plot(pen=pg.mkPen("#16a34a", width=2), symbol="o",
                                              symbolSize=6, symbolBrush="#16a34a")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.eval_plot)
        self.series: dict[str, tuple] = {}  # a joint job's curves, one pair per task
        self._pending: tuple | None = None
        # Training sends an event per step; redrawing on each would starve the event loop.
        self.timer = QTimer(self, interval=REDRAW_MS, singleShot=True)
        self.timer.timeout.connect(self._redraw)

    def set_data(self, losses: list[tuple[int, float]], evals: list[tuple[int, float]],
                 eval_name: str = "") -> None:
        """Show these points at the next redraw (coalesces bursts of updates)."""
        self._pending = (list(losses), list(evals), eval_name)
        if not self.timer.isActive():
            self.timer.start()

    def set_series(self, losses: dict[str, list[tuple[int, float]]],
                   evals: dict[str, list[tuple[int, float]]], eval_name: str = "") -> None:
        """One loss and one eval curve per task (a joint job), at the next redraw."""
        self._pending = (dict(losses), dict(evals), eval_name)
        if not self.timer.isActive():
            self.timer.start()

    def _redraw(self) -> None:
        if self._pending is None:
            return
        losses, evals, eval_name = self._pending
        self._pending = None
        if isinstance(losses, dict):
            self._draw_series(losses, evals)
        else:
            self._draw_series({}, {})
            self.loss_curve.setData([s for s, _ in losses], [v for _, v in losses])
            self.eval_curve.setData([s for s, _ in evals], [v for _, v in evals])
        self.eval_plot.setTitle(f"Evaluation ({eval_name})" if eval_name else "Evaluation")

    def _draw_series(self, losses: dict, evals: dict) -> None:
        """Per task a coloured loss and eval curve, named in a legend; the single curves
        are emptied while a joint job shows."""
        if losses:
            self.loss_curve.setData([], [])
            self.eval_curve.setData([], [])
            for plot in (self.loss_plot, self.eval_plot):
                if plot.plotItem.legend is None:
                    plot.addLegend(offset=(-10, 10))
        for name in [n for n in self.series if n not in losses]:
            loss_item, eval_item = self.series.pop(name)
            self.loss_plot.removeItem(loss_item)
            self.eval_plot.removeItem(eval_item)
        for i, name in enumerate(losses):
            if name not in self.series:
                colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
                self.series[name] = (
                    self.loss_plot.plot(pen=pg.mkPen(colour, width=2), name=name),
                    self.eval_plot.plot(pen=pg.mkPen(colour, width=2), symbol="o",
                                        symbolSize=6, symbolBrush=colour, name=name))
            loss_item, eval_item = self.series[name]
            points, marks = losses[name], evals.get(name, [])
            loss_item.setData([s for s, _ in points], [v for _, v in points])
            eval_item.setData([s for s, _ in marks], [v for _, v in marks])

    def flush(self) -> None:
        """Redraw now (used before grabbing a screenshot)."""
        self.timer.stop()
        self._redraw()
