"""Read-only tables: one way to fill a QTableWidget from rows of text."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem


def read_only_item(text: str, data: object = 0) -> QTableWidgetItem:
    """A cell that cannot be edited; ``data`` goes in its user role (never None, which some
    PySide6 builds hand back without a reference)."""
    item = QTableWidgetItem(text.replace("\n", " ⏎ "))
    if len(text) > 60:
        item.setToolTip(text[:2000])
    item.setData(Qt.ItemDataRole.UserRole, data)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def read_only_table(columns: Sequence[str] = ()) -> QTableWidget:
    """A table whose rows are selected whole and whose cells cannot be edited."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    return table


def fill_table(table: QTableWidget, header: Sequence[str], rows: Sequence[Sequence[str]],
               *, max_width: int = 0) -> None:
    """Replace the table's contents with ``rows`` under ``header`` (columns fitted to the
    text, at most ``max_width`` pixels wide when given)."""
    table.clearContents()
    table.setColumnCount(len(header))
    table.setHorizontalHeaderLabels(list(header))
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, read_only_item(str(text)))
    table.resizeColumnsToContents()
    if max_width:
        for col in range(table.columnCount()):
            table.setColumnWidth(col, min(table.columnWidth(col), max_width))
