"""Renaming and editing a task, and the warning when trained labels change."""

from __future__ import annotations

from desktop.pages.task import page as task_page
from desktop.pages.task.dialogs import EditTaskDialog
from tests.desktop.conftest import writer
from tests.desktop.helpers import add_task_with_data, add_version


def test_changing_a_trained_tasks_labels_warns_what_happens_to_its_versions():
    from desktop.pages.task.dialogs import retrain_warning
    from engine.library import Task

    task = Task(1, "senti", "classify", ["positive", "negative"], "", "", None, None, "")
    text = retrain_warning(task, {"task": "senti", "labels": ["positive", "negative",
                                                              "neutral"]}, 2)
    assert text.startswith("senti has 2 trained versions, taught as classify over positive, "
                           "negative. After this change they are used and scored as classify "
                           "over positive, negative, neutral")
    assert retrain_warning(task, {"task": "senti", "description": "x"}, 2) == ""
    assert retrain_warning(task, {"task": "senti", "kind": "generate"}, 0) == ""


def test_rename_and_edit_a_task_from_its_page(qtbot, window, sentiment_file, monkeypatch):
    add_task_with_data(window, "old-name", sentiment_file)
    window.library.select("old-name")

    class Edited(EditTaskDialog):
        def exec(self) -> int:
            self.name.setText("new-name")
            self.instruction.setPlainText("Say if the review is positive.")
            return 1

    monkeypatch.setattr(task_page, "EditTaskDialog", Edited)
    page = window.task_page
    page.edit_task()
    qtbot.waitUntil(lambda: "Saved the task 'new-name'" in page.notice.text(), timeout=30_000)
    task = window.session.library.get_task("new-name")
    assert task.instruction == "Say if the review is positive."
    assert window.library.current_task() == "new-name"
    assert page.title.text().startswith("new-name")


def test_new_labels_for_a_trained_task_go_into_a_new_task_when_asked(qtbot, window,
                                                                      sentiment_file,
                                                                      monkeypatch):
    add_task_with_data(window, "senti", sentiment_file)
    add_version(writer(window), "senti")
    window.session.notify_library_changed()
    library = window.session.library
    window.library.select("senti")
    before = library.get_task("senti").labels

    class Edited(EditTaskDialog):
        def exec(self) -> int:
            self.labels.setText(", ".join([*before, "neutral"]))
            return 1

    asked: list[str] = []
    monkeypatch.setattr(task_page, "EditTaskDialog", Edited)
    monkeypatch.setattr(task_page, "ask_how_to_edit",
                        lambda _parent, warning: asked.append(warning) or "new")
    page = window.task_page
    page.edit_task()
    qtbot.waitUntil(lambda: "Made the task 'senti-2'" in page.notice.text(), timeout=30_000)
    assert "trained version" in asked[0]
    assert library.get_task("senti").labels == before
    assert library.get_task("senti-2").labels == [*before, "neutral"]
    assert library.examples("senti-2", "train") == library.examples("senti", "train")
    assert window.library.current_task() == "senti-2"
