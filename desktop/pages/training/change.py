"""ChangeView: a continued run's metrics before and after on each eval set (the old data and
the new), as a table and a small bar plot, shown under the run's summary."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QTableWidget, QWidget

from desktop.widgets.plots import plot_widget
from desktop.widgets.tables import fill_table
from engine.api.measures import SHARES, difference_text, label, value_text

#: The eval sets a continued run measures, in the order shown.
SETS = ("old", "new")
BEFORE, AFTER = "#9ca3af", "#2563eb"


def change_rows(summary: dict, metric_name: str) -> list[list[str]]:
    """One row per eval set measured before and after: data, metric, before, after, change."""
    before, after = summary.get("before") or {}, summary.get("after") or {}
    rows = []
    for data in SETS:
        was, now = before.get(data), after.get(data)
        if not (was and now):
            continue
        name = now.get("metric_name") or metric_name or "metric"
        rows.append([f"{data} data", label(name), value_text(name, was.get("metric")),
                     value_text(name, now.get("metric")),
                     difference_text(name, was["metric"], was.get("n") or 0, now["metric"],
                                     now.get("n") or 0)])
    return rows


class ChangeView(QWidget):
    """Before/after on each eval set of a continued run; hidden for any other run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget()
        self.table.verticalHeader().hide()
        self.plot = plot_widget()
        self.plot.setFixedWidth(220)
        self.plot.getPlotItem().hideAxis("bottom")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.plot)
        self.setMaximumHeight(130)
        self.hide()

    def show_summary(self, summary: dict, metric_name: str) -> None:
        """Show ``summary``'s before/after, or hide when it has none (not a continued run)."""
        rows = change_rows(summary, metric_name)
        self.setVisible(bool(rows))
        if not rows:
            return
        fill_table(self.table, ["data", "metric", "before", "after", "change"], rows)
        self.plot.clear()
        before, after = summary["before"], summary["after"]
        sets = [data for data in SETS if before.get(data) and after.get(data)]
        scale = [100.0 if (after[d].get("metric_name") or metric_name) in SHARES else 1.0
                 for d in sets]
        for offset, source, colour in ((-0.2, before, BEFORE), (0.2, after, AFTER)):
            heights = [source[d]["metric"] * s for d, s in zip(sets, scale, strict=True)]
            self.plot.addItem(pg.BarGraphItem(x=[i + offset for i in range(len(sets))],
                                              height=heights, width=0.38, brush=colour))
        for i, data in enumerate(sets):
            text = pg.TextItem(data, anchor=(0.5, 0), color="#374151")
            text.setPos(i, 0)
            self.plot.addItem(text)
        self.plot.setToolTip("Grey: before (the parent version); blue: after (this run), on "
                             "the old and the new data.")
