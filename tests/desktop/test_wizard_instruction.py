"""The wizard proposes an instruction from the labels or examples; the user's own wins."""

from __future__ import annotations

from desktop.wizard.instruction import propose_instruction
from engine.library.readers import Example
from tests.desktop.helpers import open_wizard


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
