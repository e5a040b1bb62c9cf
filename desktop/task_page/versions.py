"""Version tables: the versions of a task with their metrics, and their lineage tree."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem, QTreeWidget, QTreeWidgetItem

from desktop.summary import headline_metric
from engine.library import Version

COLUMNS = ("", "version", "method", "length", "init", "parent", "created", "metric")


def _item(text: str, number: int) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setData(Qt.ItemDataRole.UserRole, number)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def fill_versions(table: QTableWidget, versions: list[Version], active_id: int | None) -> None:
    """One row per version, newest first; the active one is marked and bold."""
    numbers = {v.id: v.number for v in versions}
    table.setColumnCount(len(COLUMNS))
    table.setHorizontalHeaderLabels(COLUMNS)
    table.setRowCount(len(versions))
    bold = QFont()
    bold.setBold(True)
    for row, v in enumerate(sorted(versions, key=lambda v: -v.number)):
        active = v.id == active_id
        cells = ("●" if active else "", f"v{v.number}", v.method, str(v.length), v.init,
                 f"v{numbers[v.parent_id]}" if v.parent_id in numbers else "—",
                 v.created.replace("T", " ")[:16], headline_metric(v.metrics))
        for col, text in enumerate(cells):
            item = _item(text, v.number)
            if active:
                item.setFont(bold)
            if col == len(cells) - 1 and v.metrics:
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
