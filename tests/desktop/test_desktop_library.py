"""Library-side behaviour of the desktop: the wizard, the task list, the task page."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from desktop.wizard.new_task import NewTaskWizard, parse_labels
from engine.library import Library


def open_wizard(window) -> NewTaskWizard:
    wizard = NewTaskWizard(window.session, window.jobs, window)
    wizard.sig_task_created.connect(window._on_task_created)
    wizard.show()
    return wizard


def fill_wizard(qtbot, wizard: NewTaskWizard, name: str, path: Path, *, kind="classify"):
    wizard.task_page.name.setText(name)
    wizard.task_page.kind.setCurrentText(kind)
    wizard.task_page.instruction.setPlainText("Classify the sentiment.")
    wizard.train_page.train_now.setChecked(False)
    with qtbot.waitSignal(wizard.data_page.preview.sig_validated, timeout=10_000) as blocker:
        wizard.data_page.preview.load(str(path))
    return blocker.args[0]


def test_create_task_from_file_is_listed(qtbot, offline_window, sentiment_file, library_root):
    wizard = open_wizard(offline_window)
    assert fill_wizard(qtbot, wizard, "sentiment", sentiment_file) is True
    preview = wizard.data_page.preview
    assert preview.table.rowCount() == 10
    assert preview.table.item(0, 1).text() == "positive"
    assert "10 examples" in preview.status.text()
    assert wizard.data_page.isComplete()
    with qtbot.waitSignal(wizard.sig_task_created, timeout=10_000):
        wizard.accept()
    assert offline_window.library.task_names() == ["sentiment"]
    task = Library(library_root).get_task("sentiment")
    assert task.kind == "classify"
    assert sorted(task.labels) == ["negative", "positive"]  # taken from the data
    # Selecting it fills the task page with its dataset preview.
    offline_window.library.select("sentiment")
    page = offline_window.task_page
    assert page.title.text().startswith("sentiment")
    assert page.datasets.rowCount() == 1
    assert page.preview.rowCount() > 0


def test_bad_file_shows_inline_error_and_creates_nothing(qtbot, offline_window, tmp_path,
                                                         library_root):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\n{"input": "c", "output": \n',
                   encoding="utf-8")
    wizard = open_wizard(offline_window)
    assert fill_wizard(qtbot, wizard, "broken", bad) is False
    error = wizard.data_page.preview.status.text()
    assert "bad.jsonl" in error and "2" in error  # names the file and its line
    assert not wizard.data_page.isComplete()
    # Forcing creation anyway fails cleanly and leaves the library as it was.
    with qtbot.waitSignal(wizard.sig_failed, timeout=10_000):
        wizard.accept()
    assert wizard.isVisible()
    assert wizard.train_page.error.text()
    assert Library(library_root).list_tasks() == []
    assert offline_window.library.task_names() == []


def test_duplicate_and_invalid_names_are_refused(qtbot, offline_window, sentiment_file):
    offline_window.session.library.create_task("taken")
    wizard = open_wizard(offline_window)
    wizard.task_page.name.setText("taken")
    assert not wizard.task_page.isComplete()
    assert "already exists" in wizard.task_page.error.text()
    wizard.task_page.name.setText("bad/name")
    assert not wizard.task_page.isComplete()
    wizard.task_page.name.setText("fine name")
    assert wizard.task_page.isComplete()
    assert parse_labels(" a, b,,a ,c ") == ["a", "b", "c"]


def test_search_filters_and_ctrl_k_focuses(qtbot, offline_window):
    lib = offline_window.session.library
    lib.create_task("sentiment", kind="classify", labels=["positive", "negative"])
    lib.create_task("summaries", description="short summaries of news")
    lib.create_task("spam", kind="classify", labels=["spam", "ham"])
    offline_window.session.notify_library_changed()
    panel = offline_window.library
    assert panel.task_names() == ["sentiment", "spam", "summaries"]
    panel.search.setText("news")
    assert panel.task_names() == ["summaries"]
    panel.search.setText("classify")
    assert panel.task_names() == ["sentiment", "spam"]
    panel.search.clear()
    offline_window.activateWindow()
    offline_window.findChild(type(offline_window.act_new), "") or None
    for action in offline_window.actions():
        if action.shortcut().toString() == "Ctrl+K":
            action.trigger()
    assert panel.search.hasFocus() or qtbot.waitUntil(panel.search.hasFocus, timeout=2000) is None


def test_prompt_for_another_model_is_greyed_with_reason(qtbot, offline_window, tiny_host):
    from engine.prompts import ModelGeometry, SoftPrompt

    lib = offline_window.session.library
    lib.create_task("other")
    geometry = ModelGeometry.of(tiny_host)
    import torch

    prompt = SoftPrompt("prompt", torch.zeros(4, geometry.hidden_size), geometry, task="other")
    lib.add_version("other", prompt.to_bytes())
    session = offline_window.session
    session.model = {"name": "big", "fingerprint": "not-the-same", "hidden_size": 576}
    session.sig_model_changed.emit(session.model)
    item = offline_window.library.list.item(0)
    assert "hidden size 32" in item.toolTip()
    assert item.foreground().color().name() == "#9ca3af"
    session.model = {"name": "tiny", "fingerprint": geometry.fingerprint, "hidden_size": 32}
    session.sig_model_changed.emit(session.model)
    assert "hidden size" not in offline_window.library.list.item(0).toolTip()


def test_delete_asks_first(qtbot, offline_window, monkeypatch, sentiment_file):
    lib = offline_window.session.library
    lib.create_task("doomed")
    offline_window.session.notify_library_changed()
    offline_window.library.select("doomed")
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: next(answers))
    offline_window.task_page.delete_task()
    assert [t.name for t in lib.list_tasks()] == ["doomed"]
    offline_window.task_page.delete_task()
    assert lib.list_tasks() == []
    assert offline_window.library.task_names() == []


def test_first_run_examples_install_and_degrade(tmp_path, library_root, sentiment_file):
    from desktop.examples import install_examples

    lib = Library(library_root)
    assert install_examples(lib, tmp_path / "missing") == []
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "sentiment.jsonl").write_bytes(sentiment_file.read_bytes())
    (folder / "broken.jsonl").write_text("not json\n", encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"tasks": [
        {"name": "sentiment", "kind": "classify", "data": "sentiment.jsonl",
         "description": "Is a review positive or negative?"},
        {"name": "broken", "data": "broken.jsonl"},
    ]}), encoding="utf-8")
    assert install_examples(lib, folder) == ["sentiment"]
    assert [t.name for t in lib.list_tasks()] == ["sentiment"]
    assert install_examples(lib, folder) == []  # never touches a library with tasks
