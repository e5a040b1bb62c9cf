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


def right_axis_view(plot: pg.PlotWidget, label: str, colour: str) -> pg.ViewBox:
    """A second view on ``plot`` with its own y-axis on the right and the plot's x-axis, for a
    series of another unit drawn over the first (kept the plot's size as it resizes)."""
    item = plot.getPlotItem()
    view = pg.ViewBox()
    item.scene().addItem(view)
    axis = item.getAxis("right")
    axis.linkToView(view)
    axis.setLabel(label, color=colour)
    axis.setPen(colour)
    axis.setTextPen(colour)
    view.setXLink(item)

    def follow() -> None:
        view.setGeometry(item.getViewBox().sceneBoundingRect())
        view.linkedViewChanged(item.getViewBox(), view.XAxis)

    item.getViewBox().sigResized.connect(follow)
    follow()
    return view
