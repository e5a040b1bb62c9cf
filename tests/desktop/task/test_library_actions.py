"""The task list and page: create, activate, delete, search, refusals and a lost catalogue."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from desktop.widgets.formatting import parse_labels
from desktop.widgets.tone import tone_colour
from engine.api.session import ModelDescription
from engine.errors import PromptbankError
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.desktop.conftest import ENGINE_START_MS, make_window, writer
from tests.desktop.helpers import ENGINE_MS, add_version, fill_wizard, open_wizard


def run_op(qtbot, window, op: str, args: dict) -> tuple[str, object]:
    """Send one op through the desktop's EngineOp; ("ok", result) or ("failed", message)."""
    outcome: list = []
    (window.session.op(op, args)
     .on_success(lambda data: outcome.append(("ok", data)))
     .on_failure(lambda message: outcome.append(("failed", message)))
     .run())
    qtbot.waitUntil(lambda: bool(outcome), timeout=ENGINE_MS)
    return outcome[0]


def test_create_task_from_file_is_listed(qtbot, window, sentiment_file):
    wizard = open_wizard(window)
    assert fill_wizard(qtbot, wizard, "sentiment", sentiment_file) is True
    preview = wizard.dataset_page.preview
    assert preview.table.rowCount() == 10
    assert preview.table.item(0, 1).text() == "positive"
    assert "10 examples" in preview.status.text()
    assert wizard.dataset_page.isComplete()
    with qtbot.waitSignal(wizard.sig_task_created, timeout=ENGINE_MS):
        wizard.accept()
    assert "sentiment" in window.library.task_names()
    task = writer(window).get_task("sentiment")
    assert task.kind == "classify"
    assert sorted(task.labels) == ["negative", "positive"]  # taken from the data
    # Selecting it fills the task page with its dataset preview.
    window.library.select("sentiment")
    page = window.task_page
    assert page.title.text().startswith("sentiment")
    assert page.datasets.rowCount() == 1
    assert page.preview.rowCount() > 0


def test_bad_file_shows_inline_error_and_creates_nothing(qtbot, window, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\n{"input": "c", "output": \n',
                   encoding="utf-8")
    wizard = open_wizard(window)
    assert fill_wizard(qtbot, wizard, "broken", bad) is False
    error = wizard.dataset_page.preview.status.text()
    assert "bad.jsonl" in error and "2" in error  # names the file and its line
    assert not wizard.dataset_page.isComplete()
    # Forcing creation anyway fails cleanly (the engine says why) and changes nothing.
    with qtbot.waitSignal(wizard.sig_failed, timeout=ENGINE_MS) as failed:
        wizard.accept()
    assert "bad.jsonl" in failed.args[0]
    assert wizard.isVisible()
    assert wizard.training_page.error.text() == failed.args[0]
    assert "broken" not in [t.name for t in writer(window).list_tasks()]
    assert "broken" not in window.library.task_names()


def test_set_active_goes_through_the_engine(qtbot, window):
    lib = writer(window)
    lib.create_task("versions")
    add_version(lib, "versions")
    add_version(lib, "versions")
    window.session.notify_library_changed()
    window.library.select("versions")
    page = window.task_page
    page.versions.selectRow(1)  # newest first: v1; the latest (v2) is served until then
    with qtbot.waitSignal(window.session.sig_library_changed, timeout=ENGINE_MS):
        page.set_active()
    assert lib.get_task("versions").active_version_id == lib.get_version("versions", 1).id
    assert page.error.text() == ""


def test_delete_asks_first_then_the_engine_deletes(qtbot, window, monkeypatch):
    lib = writer(window)
    lib.create_task("doomed")
    window.session.notify_library_changed()
    window.library.select("doomed")
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: next(answers))
    window.task_page.delete_task()
    assert "doomed" in [t.name for t in lib.list_tasks()]
    with qtbot.waitSignal(window.session.sig_library_changed, timeout=ENGINE_MS):
        window.task_page.delete_task()
    assert "doomed" not in [t.name for t in lib.list_tasks()]
    assert "doomed" not in window.library.task_names()


def test_a_refused_change_shows_the_engines_message(qtbot, window):
    page = window.task_page
    page.run_change("activate", {"task": "no-such-task", "version": 1})
    qtbot.waitUntil(lambda: "no task named 'no-such-task'" in page.error.text(),
                    timeout=ENGINE_MS)


def test_examples_are_installed_by_the_engine_when_it_starts(qtbot, window, tmp_path,
                                                             sentiment_file):
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "sentiment.jsonl").write_bytes(sentiment_file.read_bytes())
    (folder / "manifest.json").write_text(json.dumps({"tasks": [
        {"name": "example-sentiment", "kind": "classify", "data": "sentiment.jsonl"}]}),
        encoding="utf-8")
    session = window.session
    old_root = session.library.root
    session.examples = folder
    try:
        with qtbot.waitSignal(session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            session.open_library(tmp_path / "fresh-library")
        assert window.library.task_names() == ["example-sentiment"]
        assert session.examples is None  # installed once
        assert not session.library.stand_in and session.library.read_only
    finally:
        with qtbot.waitSignal(session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            session.open_library(old_root)


def test_edit_add_data_and_import_ops_from_the_desktop(qtbot, window, sentiment_file, tmp_path,
                                                       tiny_host):
    assert run_op(qtbot, window, "create_task", {"task": "ops"})[0] == "ok"
    status, data = run_op(qtbot, window, "edit_task", {"task": "ops", "new_name": "ops2",
                                                       "description": "renamed"})
    assert status == "ok" and data.task["description"] == "renamed"
    status, data = run_op(qtbot, window, "add_dataset", {"task": "ops2",
                                                         "data": str(sentiment_file)})
    assert status == "ok" and data.added and data.dataset["rows"] == 10
    prompt = tmp_path / "imported.safetensors"
    geometry = ModelGeometry.of(tiny_host)
    prompt.write_bytes(SoftPrompt("prompt", torch.zeros(3, geometry.hidden_size), geometry,
                                  task="imported").to_bytes())
    status, data = run_op(qtbot, window, "import", {"path": str(prompt)})
    assert status == "ok" and data.added == ["imported v1"]
    names = [t.name for t in window.session.library.list_tasks()]
    assert {"ops2", "imported"} <= set(names) and "ops" not in names
    for op, args, words in (
            ("edit_task", {"task": "ops2", "new_name": "imported"}, "already exists"),
            ("add_dataset", {"task": "ops2", "data": str(tmp_path / "gone.jsonl")},
             "does not exist"),
            ("import", {"path": str(tmp_path / "gone.zip")}, "does not exist"),
            ("delete_task", {"task": "nobody"}, "no task named 'nobody'")):
        status, message = run_op(qtbot, window, op, args)
        assert status == "failed" and words in message and "\n" not in message, (op, message)


def test_the_engine_also_refuses_a_lost_catalogue(qtbot, window, tmp_path):
    lost = tmp_path / "lost"
    lib = Library(lost)
    lib.create_task("sent")
    add_version(lib, "sent")
    lib.close()
    (lost / "library.db").write_bytes(b"")  # emptied
    session = window.session
    old_root = session.library.root
    try:
        with qtbot.waitSignal(session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            session.open_library(lost)
        # The engine's own attempt to open it failed the same way: the message stays, the
        # model still serves, and the empty file was left as it was.
        assert "lost its catalogue" in session.library_problem
        assert "lost its catalogue" in window.library.empty.text()
        assert (lost / "library.db").read_bytes() == b""
    finally:
        with qtbot.waitSignal(session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            session.open_library(old_root)
    assert session.library_problem == "" and "lost" not in window.library.empty.text()


def test_the_desktops_library_cannot_write(offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("kept")
    lib.checkpoint()
    session = offline_window.session
    session.notify_library_changed()
    assert offline_window.library.task_names() == ["kept"]
    before = (library_root / "library.db").read_bytes()
    reader = session.library
    assert reader.read_only
    for change in (lambda: reader.create_task("new"), lambda: reader.delete_task("kept"),
                   lambda: reader.rename_task("kept", "other")):
        with pytest.raises(PromptbankError, match="opened read-only"):
            change()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM tasks")
    lib.checkpoint()
    assert (library_root / "library.db").read_bytes() == before
    assert [t.name for t in lib.list_tasks()] == ["kept"]


def test_a_lost_catalogue_is_said_with_its_remedy(qtbot, library_root, settings):
    lib = Library(library_root)
    lib.create_task("sent")
    add_version(lib, "sent")
    lib.close()
    for name in ("library.db", "library.db-wal", "library.db-shm"):
        (library_root / name).unlink(missing_ok=True)
    window = make_window(qtbot, library_root, settings, "default")
    window.show()
    empty = window.library.empty
    assert empty.isVisible() and window.library.task_names() == []
    assert "lost its catalogue" in empty.text() and "promptbank library rebuild" in empty.text()
    assert "No tasks yet" not in empty.text()
    assert not (library_root / "library.db").exists()  # the desktop created nothing


def test_a_new_library_says_no_tasks_yet(offline_window, library_root):
    empty = offline_window.library.empty
    assert empty.isVisible() and empty.text().startswith("No tasks yet")
    assert offline_window.session.library.stand_in
    Library(library_root).create_task("first")  # e.g. the engine, or the command line
    offline_window.session.notify_library_changed()
    assert offline_window.library.task_names() == ["first"]
    assert not offline_window.session.library.stand_in and not empty.isVisible()


def test_duplicate_and_invalid_names_are_refused(qtbot, offline_window, library_root):
    Library(library_root).create_task("taken")
    offline_window.session.notify_library_changed()
    wizard = open_wizard(offline_window)
    wizard.name_page.name.setText("taken")
    assert not wizard.name_page.isComplete()
    assert "already exists" in wizard.name_page.error.text()
    wizard.name_page.name.setText("bad/name")
    assert not wizard.name_page.isComplete()
    wizard.name_page.name.setText("fine name")
    assert wizard.name_page.isComplete()
    assert parse_labels(" a, b,,a ,c ") == ["a", "b", "c"]


def test_search_filters_and_ctrl_k_focuses(qtbot, offline_window, library_root):
    lib = Library(library_root)
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
    for action in offline_window.actions():
        if action.shortcut().toString() == "Ctrl+K":
            action.trigger()
    assert panel.search.hasFocus() or qtbot.waitUntil(panel.search.hasFocus, timeout=2000) is None


def test_prompt_for_another_model_is_greyed_with_reason(qtbot, offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("other")
    add_version(lib, "other")
    session = offline_window.session
    session.notify_library_changed()
    session.set_model(ModelDescription(name="big", fingerprint="not-the-same", hidden_size=576))
    item = offline_window.library.list.item(0)
    assert "hidden size 32" in item.toolTip()
    assert item.foreground().color().name() == tone_colour("muted")
    session.set_model(ModelDescription(name="tiny", fingerprint="f" * 32, hidden_size=32))
    assert "hidden size" not in offline_window.library.list.item(0).toolTip()
