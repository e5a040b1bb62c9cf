"""The dataset preview follows the selected task."""

from __future__ import annotations

from engine.library import Library
from tests.desktop.conftest import write_jsonl


def test_dataset_preview_follows_the_task_and_survives_f5(qtbot, offline_window, library_root,
                                                          tmp_path):
    lib = Library(library_root)
    for name in ("apples", "pears"):
        lib.create_task(name, kind="generate")
        lib.add_dataset(name, write_jsonl(tmp_path / f"{name}.jsonl",
                                          [(f"{name} row {i}", "out") for i in range(10)]))
    window = offline_window
    window.session.notify_library_changed()
    page = window.task_page
    for name in ("apples", "pears", "apples"):
        window.library.select(name)
        assert page.preview.rowCount() > 0
        shown = {page.preview.item(r, 0).text() for r in range(page.preview.rowCount())}
        assert all(text.startswith(name) for text in shown), (name, shown)
    refresh = next(a for a in window.actions() if a.shortcut().toString() == "F5")
    refresh.trigger()
    assert page.preview.item(0, 0).text().startswith("apples")
