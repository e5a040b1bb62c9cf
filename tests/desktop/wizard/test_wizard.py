"""The new-task wizard: columns, an instruction from the labels, few-shot mode and a start."""

from __future__ import annotations

from desktop.wizard.dataset_preview import DatasetPreview
from desktop.wizard.instruction import propose_instruction
from engine.library.readers import Example
from tests.desktop.conftest import write_jsonl, writer
from tests.desktop.helpers import (
    ENGINE_MS,
    TRAIN_MS,
    add_random_version,
    add_task_with_data,
    fill_wizard,
    open_wizard,
)


def test_wizard_says_few_shot_and_suggests_a_start(qtbot, window, tmp_path, tiny_host,
                                                   sentiment_file):
    add_task_with_data(window, "start-source", sentiment_file)
    add_random_version(window, tiny_host, "start-source", seed=3)
    data = write_jsonl(tmp_path / "small.jsonl", [("great film", "positive"),
                                                  ("bad film", "negative")] * 8)
    wizard = open_wizard(window)
    assert fill_wizard(qtbot, wizard, "small-task", data) is True
    wizard.next()
    wizard.next()
    page = wizard.training_page
    assert page.mode.mode == "few-shot" and "Few-shot mode (16 examples)" in page.mode.text()
    assert page.settings.steps.value() == 100
    page.settings.method.setCurrentText("prompt")
    page.settings.length.setValue(4)
    page.suggestion.button.click()
    qtbot.waitUntil(lambda: page.suggestion.ranking.isVisible(), timeout=ENGINE_MS)
    starts = [s.init for s in page.suggestion.starts]
    assert {"task:start-source", "text"} <= set(starts)  # the library's prompt-4 prompts
    assert page.settings.init.currentText() == starts[0]
    best = page.suggestion.starts[0]
    assert best.steps_saved is not None and best.head_start
    assert page.suggestion.status.text().startswith(f"Best start: {starts[0]}")
    assert best.head_start in page.suggestion.status.text()  # in words, e.g. "about 5 steps"
    page.train_now.setChecked(True)
    page.settings.steps.setValue(2)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
        wizard.accept()
    run = writer(window).list_runs("small-task")[0]
    assert run.config["train"]["mode"] == "few-shot" and run.config["train"]["patience"] == 3
    assert run.config["train"]["init"] == starts[0]


def _load(qtbot, wizard, path) -> None:
    with qtbot.waitSignal(wizard.dataset_page.preview.sig_validated, timeout=10_000):
        wizard.dataset_page.preview.load(str(path))


def test_a_classify_task_without_instruction_gets_one_from_its_inferred_labels(
        qtbot, offline_window, sentiment_file):
    wizard = open_wizard(offline_window)
    qtbot.addWidget(wizard)
    wizard.name_page.name.setText("senti")
    wizard.name_page.kind.setCurrentText("classify")
    _load(qtbot, wizard, sentiment_file)
    proposed = wizard.name_page.instruction.toPlainText()
    assert proposed.startswith("Classify the input as one of: ")
    assert set(proposed.removeprefix("Classify the input as one of: ").rstrip(".").split(
        ", ")) == set(wizard.labels())
    assert proposed in wizard.dataset_page.proposal.text()
    wizard.name_page.instruction.setPlainText("Is the review happy?")
    _load(qtbot, wizard, sentiment_file)
    assert wizard.name_page.instruction.toPlainText() == "Is the review happy?"


def test_a_generate_proposal_quotes_a_couple_of_outputs_cut_short():
    examples = [Example("a", "x" * 200), Example("b", "  "), Example("c", "short one")]
    text = propose_instruction("generate", [], examples)
    assert "“short one”" in text and "…" in text and len(text) < 200
    assert propose_instruction("generate", [], [Example("a", " ")]) == ""


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
