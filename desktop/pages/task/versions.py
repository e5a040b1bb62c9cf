"""Version tables: the versions of a task with their metrics, and their lineage tree."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QTableWidget, QTreeWidget, QTreeWidgetItem

from desktop.widgets.formatting import format_duration
from desktop.widgets.tables import read_only_item
from engine.api.measures import headline_metric
from engine.library import Run, Version

COLUMNS = ("", "version", "method", "length", "init", "parent", "created", "metric",
           "trained in")


def training_time(version: Version, runs: dict[int, Run]) -> str:
    """How long the run that made ``version`` trained ('—' for imports and old runs)."""
    run = runs.get(version.run_id) if version.run_id is not None else None
    seconds = run.summary.get("train_seconds") if run is not None else None
    return format_duration(seconds) if isinstance(seconds, int | float) else "—"


def fill_versions(table: QTableWidget, versions: list[Version], active_id: int | None,
                  runs: dict[int, Run]) -> None:
    """One row per version, newest first; the active one is marked and bold."""
    numbers = {v.id: v.number for v in versions}
    table.clearContents()
    table.setColumnCount(len(COLUMNS))
    table.setHorizontalHeaderLabels(COLUMNS)
    table.setRowCount(len(versions))
    bold = QFont()
    bold.setBold(True)
    for row, v in enumerate(sorted(versions, key=lambda v: -v.number)):
        active = v.id == active_id
        cells = ("●" if active else "", f"v{v.number}", v.method, str(v.length), v.init,
                 f"v{numbers[v.parent_id]}" if v.parent_id in numbers else "—",
                 v.created.replace("T", " ")[:16], headline_metric(v.metrics),
                 training_time(v, runs))
        for col, text in enumerate(cells):
            item = read_only_item(text, v.number)
            if active:
                item.setFont(bold)
            if COLUMNS[col] == "metric" and v.metrics:
                item.setToolTip("\n".join(f"{k}: {val}" for k, val in v.metrics.items()))
            table.setItem(row, col, item)
    table.resizeColumnsToContents()


def selected_numbers(table: QTableWidget) -> list[int]:
    """Version numbers of the selected rows, in table order."""
    rows = sorted({i.row() for i in table.selectedItems()})
    return [table.item(r, 1).data(Qt.ItemDataRole.UserRole) for r in rows]


def fill_lineage(tree: QTreeWidget, versions: list[Version], active_id: int | None) -> None:
    """Versions as a tree: each version under the version it was trained from."""
    tree.clear()
    tree.setHeaderLabels(["lineage", "how"])
    items: dict[int, QTreeWidgetItem] = {}
    for v in sorted(versions, key=lambda v: v.number):
        how = f"{v.method}×{v.length}, init {v.init}"
        label = f"v{v.number}" + ("  (active)" if v.id == active_id else "")
        parent = items.get(v.parent_id) if v.parent_id is not None else None
        item = QTreeWidgetItem(parent or tree, [label, how])
        items[v.id] = item
    tree.expandAll()
    tree.resizeColumnToContents(0)
