"""The pieces an analyst missed (issue 13, point 4): import, edit, stop, detected columns,
eval-set sizes and training time, inspect's heat map and prefix prompts."""

from __future__ import annotations

import torch

from desktop.pages.playground.page import PROMPT_BOX
from desktop.pages.task import page as task_page
from desktop.pages.task.dialogs import EditTaskDialog
from desktop.pages.task.versions import COLUMNS
from desktop.wizard.dataset_preview import DatasetPreview
from engine.api.inspection import Similarity
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.desktop.helpers import add_random_version, add_task_with_data


def test_the_wizard_names_the_detected_columns_and_counts_the_outputs(qtbot, tmp_path):
    table = tmp_path / "reviews.csv"
    table.write_text("id,text,label\n1,great,positive\n2,bad,negative\n3,fine,positive\n",
                     encoding="utf-8")
    preview = DatasetPreview()
    qtbot.addWidget(preview)
    with qtbot.waitSignal(preview.sig_validated, timeout=10_000):
        preview.load(str(table))
    assert preview.input_column.itemText(0) == "text (detected)"
    assert preview.output_column.itemText(0) == "label (detected)"
    assert preview.columns() == (None, None)
    assert "positive ×2 · negative ×1" in preview.status.text()
    with qtbot.waitSignal(preview.sig_validated, timeout=10_000):
        preview.input_column.setCurrentText("id")
    assert preview.columns() == ("id", None)


def test_versions_show_the_eval_set_size_and_the_training_time(offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("t")
    run = lib.create_run("t", {"train": {"steps": 4}})
    geometry = ModelGeometry("f" * 32, 32, 2, 2, 8)
    lib.add_version("t", SoftPrompt("prompt", torch.zeros(2, 32), geometry, task="t").to_bytes(),
                    run_id=run.id, metrics={"metric_name": "accuracy", "best_metric": 1.0,
                                            "eval_n": 6})
    lib.finish_run(run.id, "done", summary={"steps": 4, "train_seconds": 75.0})
    offline_window.session.notify_library_changed()
    page = offline_window.task_page
    page.set_task("t")
    metric = page.versions.item(0, COLUMNS.index("metric")).text()
    assert metric == "accuracy 100.0 % (95 % CI 61.0–100.0 %, 6 rows)"
    assert page.versions.item(0, COLUMNS.index("trained in")).text() == "1 min 15 s"


def test_inspect_shows_values_and_a_scale_and_says_why_prefixes_have_no_tokens(
        qtbot, offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("deep")
    geometry = ModelGeometry("f" * 32, 32, 2, 2, 8)
    lib.add_version("deep", SoftPrompt("prefix", torch.ones(2, 2, 2, 3, 8), geometry,
                                       task="deep").to_bytes())
    offline_window.session.notify_library_changed()
    page = offline_window.inspect
    page.set_task("deep")
    assert not page.tokens_button.isEnabled()
    assert "prefix" in page.tokens_button.toolTip() and "prefix" in page.status.text()
    assert page.tokens.rowCount() == 3  # norms are still shown, one row per position
    page.show_similarity(Similarity(method="prefix", tasks=["a", "b"],
                                    matrix=[[1.0, 0.25], [0.25, 1.0]]))
    assert sorted(label.toPlainText() for label in page.heat_labels) == [
        "0.25", "0.25", "1.00", "1.00"]
    assert page.colour_bar.values == (-1.0, 1.0)


def test_import_from_the_desktop(qtbot, window, tiny_host, tmp_path):
    geometry = ModelGeometry.of(tiny_host)
    prompt = tmp_path / "shared.safetensors"
    prompt.write_bytes(SoftPrompt("prompt", torch.zeros(3, geometry.hidden_size), geometry,
                                  task="shared").to_bytes())
    dialog = window.import_prompts()
    qtbot.addWidget(dialog)
    dialog.path.setText(str(prompt))
    dialog.task.setText("from-file")
    with qtbot.waitSignal(dialog.sig_imported, timeout=60_000):
        dialog.import_button.click()
    assert "Added: from-file v1" in dialog.report.text()
    assert "from-file" in window.library.task_names()
    dialog.path.setText(str(tmp_path / "gone.zip"))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: "does not exist" in dialog.report.text(), timeout=30_000)
    dialog.close()


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


def test_stop_ends_a_long_generation_and_keeps_its_text(qtbot, window, sentiment_file,
                                                        tiny_host):
    add_task_with_data(window, "chatty", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "chatty", 31)
    page = window.playground
    page.compare.setChecked(False)
    page.set_task("chatty")
    page.max_tokens.setValue(400)
    page.input.setPlainText("tell me about the movie")
    output = page.outputs[PROMPT_BOX]
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as finished:
        page.run()
        qtbot.waitUntil(lambda: output.toPlainText() != "", timeout=30_000)  # it streams
        assert page.stop_button.isEnabled()
        page.stop_button.click()
    assert page.status.text().startswith("Stopped")
    assert finished.args[0][0] == output.toPlainText() != ""
    assert page.run_button.isEnabled() and not page.stop_button.isEnabled()
