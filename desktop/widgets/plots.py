"""One look for every plot (pyqtgraph): the window's own colours, light or dark."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QColor, QPalette


def ink(widget) -> QColor:
    """The text colour of ``widget``'s palette (dark on a light theme, light on a dark one)."""
    return widget.palette().color(QPalette.ColorRole.Text)


class ThemedPlot(pg.PlotWidget):
    """A PlotWidget drawn on the palette's base colour with its text colour, restyled when
    the palette changes (the system switched between light and dark)."""

    def __init__(self, title: str = "") -> None:
        super().__init__()
        self.title = title
        self.restyle()

    def restyle(self) -> None:
        """Apply the current palette to the background, the title and the main axes."""
        colour = ink(self)
        self.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.setTitle(self.title, color=colour.name())
        for side in ("left", "bottom"):
            axis = self.getAxis(side)
            axis.setPen(colour)
            axis.setTextPen(colour)

    def set_title(self, title: str) -> None:
        """Change the title, in the palette's text colour."""
        self.title = title
        self.setTitle(title, color=ink(self).name())

    def changeEvent(self, event: QEvent) -> None:
        # pyqtgraph's own construction changes the palette before the plot exists.
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "title"):
            self.restyle()
        super().changeEvent(event)


def plot_widget(title: str = "") -> ThemedPlot:
    """A plot in the window's colours (set per plot, so nothing is changed in pyqtgraph's
    global configuration)."""
    return ThemedPlot(title)


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
