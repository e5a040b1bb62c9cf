"""Batch apply: writing a file, failures in place, progress, cancel and the results table."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.library import Library
from tests.desktop.helpers import (
    add_random_version,
    add_task_with_data,
    add_version,
)


def test_batch_apply_writes_file(qtbot, window, tmp_path, sentiment_file, tiny_host):
    add_task_with_data(window, "alpha", sentiment_file)
    add_random_version(window, tiny_host, "alpha", 1)
    table = tmp_path / "reviews.csv"
    table.write_text("id,text\n1,great movie\n2,boring film\n3,wonderful acting\n",
                     encoding="utf-8")
    page = window.batch
    page.load(str(table))
    assert page.column.currentText() == "text"
    page.set_tasks(["alpha"])
    out = tmp_path / "reviews.out.csv"
    assert page.output.text() == str(out)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    text = out.read_text(encoding="utf-8")
    assert len(text.strip().splitlines()) == 4
    assert "alpha" in text.splitlines()[0]
    assert page.open_folder.isEnabled()


def test_batch_apply_failures_show_in_place(qtbot, window, tmp_path, sentiment_file,
                                            tiny_host):
    add_task_with_data(window, "delta", sentiment_file)
    add_random_version(window, tiny_host, "delta", 4)
    table = tmp_path / "t.csv"
    table.write_text("a,b\nx,y\n", encoding="utf-8")
    page = window.batch
    page.load(str(table))
    page.set_tasks([])
    page.run()
    assert "Tick at least one task" in page.status.text()
    page.set_tasks(["delta"])
    table.unlink()  # the file went away after it was chosen: the engine says so
    with qtbot.waitSignal(page.sig_failed, timeout=30_000) as failed:
        page.run()
    assert "t.csv" in failed.args[0]
    assert failed.args[0] in page.status.text()
    assert not (tmp_path / "t.out.csv").exists()
    assert page.run_button.isEnabled()


def test_batch_apply_names_the_checkbox_for_an_existing_output(offline_window, tmp_path,
                                                               library_root):
    lib = Library(library_root)
    lib.create_task("t", kind="classify", labels=["a", "b"])
    add_version(lib, "t")
    offline_window.session.notify_library_changed()
    table = tmp_path / "in.csv"
    table.write_text("text\nhello\n", encoding="utf-8")
    (tmp_path / "in.out.csv").write_text("old", encoding="utf-8")
    page = offline_window.batch
    page.load(str(table))
    page.set_tasks(["t"])
    page.run()
    assert "Overwrite if it exists" in page.status.text()
    assert "--overwrite" not in page.status.text()
    assert (tmp_path / "in.out.csv").read_text() == "old"


def test_batch_progress_moves_results_show_and_a_cancel_says_so(qtbot, window, tmp_path,
                                                                sentiment_file, tiny_host):
    add_task_with_data(window, "rows", sentiment_file)
    add_random_version(window, tiny_host, "rows", 23)
    table = tmp_path / "many.csv"
    table.write_text("text\n" + "".join(f"great film {i}\n" for i in range(40)),
                     encoding="utf-8")
    page = window.batch
    page.load(str(table))
    page.set_tasks(["rows"])
    values: list[int] = []
    page.progress.valueChanged.connect(values.append)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    assert [v for v in values if 0 < v < 1000], values  # it moved before the end
    assert page.progress.value() == 1000
    assert page.preview_title.text().startswith("Results")
    header = [page.preview.horizontalHeaderItem(c).text()
              for c in range(page.preview.columnCount())]
    assert "rows" in header and page.preview.rowCount() > 0
    page.overwrite.setChecked(True)
    with qtbot.waitSignal(page.sig_failed, timeout=60_000) as failed:
        page.run()
        page.cancel()
    assert failed.args[0].startswith("Cancelled after") and "Wrote" not in page.status.text()


def test_batch_picks_the_text_column_and_will_not_tick_an_untrained_task(offline_window,
                                                                         tmp_path,
                                                                         library_root):
    lib = Library(library_root)
    lib.create_task("ready", kind="classify", labels=["a", "b"])
    add_version(lib, "ready")
    lib.create_task("fresh", kind="classify", labels=["a", "b"])
    offline_window.session.notify_library_changed()
    table = tmp_path / "in.csv"
    table.write_text("id,review,stars\n1,a long and thoughtful review of the film,4\n"
                     "2,short but sweet,5\n", encoding="utf-8")
    page = offline_window.batch
    page.load(str(table))
    assert page.column.currentText() == "review"  # the text, not the first column (id)
    page.set_tasks(["ready", "fresh"])
    assert page.chosen_tasks() == ["ready"]
    fresh = next(page.tasks.item(r) for r in range(page.tasks.count())
                 if page.tasks.item(r).data(Qt.ItemDataRole.UserRole) == "fresh")
    assert not fresh.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "not trained yet" in fresh.toolTip()


def test_batch_results_put_the_predictions_first_and_count_the_labels(offline_window, tmp_path):
    page = offline_window.batch
    table = tmp_path / "in.csv"
    table.write_text("id,text\n1,x\n2,y\n3,z\n", encoding="utf-8")
    page.load(str(table))
    out = tmp_path / "in.out.csv"
    out.write_text("id,text,senti\n1,x,pos\n2,y,neg\n3,z,pos\n", encoding="utf-8")
    page.show_results(out)
    header = [page.preview.horizontalHeaderItem(c).text()
              for c in range(page.preview.columnCount())]
    assert header == ["senti", "id", "text"]
    assert page.preview_title.text().endswith("— senti: pos ×2 · neg ×1")
