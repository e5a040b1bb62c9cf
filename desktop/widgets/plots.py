"""One look for every plot (pyqtgraph): white background, dark axes and title."""

from __future__ import annotations

import pyqtgraph as pg

INK = "#111827"


def plot_widget(title: str = "") -> pg.PlotWidget:
    """A PlotWidget on white with dark axes, labels and title (set per plot, so nothing is
    changed in pyqtgraph's global configuration)."""
    plot = pg.PlotWidget(background="w")
    plot.setTitle(title, color=INK)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(INK)
        axis.setTextPen(INK)
    return plot


def set_title(plot: pg.PlotWidget, title: str) -> None:
    """Change a plot's title, keeping its colour."""
    plot.setTitle(title, color=INK)
