"""Renaming and editing a task, and the warning when trained labels change."""

from __future__ import annotations

from desktop.pages.task import page as task_page
from desktop.pages.task.dialogs import EditTaskDialog
from tests.desktop.helpers import add_task_with_data


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
