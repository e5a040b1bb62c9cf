"""Compare versions on the same evaluation data."""

from __future__ import annotations

from PySide6.QtWidgets import QTableWidget

from desktop.pages.task.dialogs import CompareDialog
from tests.desktop.conftest import writer
from tests.desktop.helpers import (
    add_random_version,
    add_task_with_data,
)


def test_compare_shows_scores_on_the_same_data(qtbot, window, sentiment_file, tiny_host):
    add_task_with_data(window, "cmp", sentiment_file)
    add_random_version(window, tiny_host, "cmp", 24)
    add_random_version(window, tiny_host, "cmp", 25)
    page = window.task_page
    page.set_task("cmp")
    panel = page.evaluations
    done: list = []
    panel.sig_evaluated.connect(done.append)
    panel.start([{"task": "cmp", "version": 1}, {"task": "cmp", "version": 2},
                 {"task": "cmp", "baseline": "fewshot"}])
    qtbot.waitUntil(lambda: len(done) == 3, timeout=60_000)
    assert panel.table.rowCount() == 3
    digests = {panel.table.item(r, 0).text() for r in range(3)}
    assert len(digests) == 1  # the same examples
    versions = window.session.library.list_versions("cmp")
    dialog = CompareDialog(versions, window.session.library.list_evaluations("cmp"), window)
    qtbot.addWidget(dialog)
    table: QTableWidget = dialog.same_data
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert header[:5] == ["data", "metric", "v1", "v2", "fewshot"]
    assert table.rowCount() >= 1 and "—" not in table.item(0, 2).text()
    assert writer(window).list_evaluations("cmp")[0].n == done[0].n
