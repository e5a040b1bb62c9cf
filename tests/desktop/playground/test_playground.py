"""The playground: follows the task, runs the version picked, classifies, stops generation."""

from __future__ import annotations

from PySide6.QtCore import QTimer

from desktop.pages.playground.page import BASE_BOX, PROMPT_BOX
from tests.desktop.conftest import writer
from tests.desktop.helpers import (
    add_random_version,
    add_task_with_data,
)


def test_playground_output_follows_the_task_and_compare(qtbot, window, sentiment_file,
                                                        tiny_host):
    add_task_with_data(window, "follow-a", sentiment_file, kind="generate")
    add_task_with_data(window, "follow-b", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "follow-a", 11)
    page = window.playground
    page.compare.setChecked(False)
    page.max_tokens.setValue(4)
    page.input.setPlainText("the movie was great")
    page.set_task("follow-a")
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as done:
        page.run()
    answer = done.args[0][0]
    shown = page.outputs[PROMPT_BOX].toPlainText().removesuffix("\n[cut at 4 tokens]")
    assert shown == answer
    page.compare.setChecked(True)  # the answer stays under "Soft prompt", not "Base model"
    assert page.output_boxes[PROMPT_BOX].title() == "Soft prompt"
    assert page.outputs[PROMPT_BOX].toPlainText().removesuffix("\n[cut at 4 tokens]") == answer
    assert page.outputs[BASE_BOX].toPlainText() == ""
    window.library.select("follow-b")
    assert page.task_combo.currentText() == "follow-b"
    assert all(edit.toPlainText() == "" for edit in page.outputs)
    assert not page.bars.bars
    assert "Done" not in page.status.text()
    page.compare.setChecked(False)


def test_playground_switches_tasks(qtbot, window, sentiment_file, tiny_host):
    add_task_with_data(window, "alpha", sentiment_file)
    add_task_with_data(window, "beta", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "alpha", 1)
    add_random_version(window, tiny_host, "beta", 2)
    window.playground.settings.setValue("playground/pinned", ["alpha", "beta"])
    page = window.playground
    page.max_tokens.setValue(4)
    page.input.setPlainText("the movie was great")
    page.set_task("alpha")
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as first:
        page.run()
    qtbot.waitUntil(lambda: bool(page.bars.bars), timeout=30_000)
    probs = {name: bar.value() for name, bar in page.bars.bars.items()}
    assert set(probs) == {"positive", "negative"}
    assert abs(sum(probs.values()) - 1000) <= 2
    page.pick_pinned(2)  # Ctrl+2: the second task, without any reload
    assert page.task_combo.currentText() == "beta"
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as second:
        page.run()
    assert len(first.args[0]) == len(second.args[0]) == 1
    assert "Done" in page.status.text()
    page.compare.setChecked(True)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as compared:
        page.run()
    assert len(compared.args[0]) == 3
    # Every column had the same budget, and one that used it all says it was cut there.
    for box, result in zip(page.boxes_in_use, page.generated.results, strict=True):
        cut = page.outputs[box].toPlainText().endswith("\n[cut at 4 tokens]")
        assert cut == (result.finish_reason == "length")
    page.set_task("alpha")  # classify: each way's label probabilities under its own column
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    qtbot.waitUntil(lambda: all(len(b.bars) == 2 for b in page.box_bars), timeout=30_000)
    for bars in page.box_bars:
        assert abs(sum(bar.value() for bar in bars.bars.values()) - 1000) <= 2
    assert not page.bars.bars  # nothing above the columns, where it could mean any of them
    page.compare.setChecked(False)
    page.temperature.setValue(0.7)
    page.top_p.setValue(0.9)
    page.stop.setText("zzz, ,  qq ")
    assert page.generation_settings() == {"max_new_tokens": 4, "temperature": 0.7,
                                          "top_p": 0.9, "stop": ["zzz", "qq"]}
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as sampled:
        page.run()
    assert len(sampled.args[0]) == 1 and "zzz" not in sampled.args[0][0]
    assert "Done" in page.status.text()


def test_playground_runs_the_version_picked_and_says_how_fast(qtbot, window, sentiment_file,
                                                              tiny_host):
    add_task_with_data(window, "versions", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "versions", 31)
    add_random_version(window, tiny_host, "versions", 32)
    writer(window).set_active("versions", 1)
    window.session.notify_library_changed()
    page = window.playground
    page.compare.setChecked(False)
    page.set_task("versions")
    assert [page.version.itemText(i) for i in range(page.version.count())] == [
        "v1 (active)", "v2"]
    page.version.setCurrentIndex(1)
    page.max_tokens.setValue(3)
    page.input.setPlainText("hello there")
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    assert page.generated.results[0].version == 2
    assert "tokens/s" in page.status.text() and "first token after" in page.status.text()


def test_classify_says_done_only_with_its_probabilities(qtbot, window, sentiment_file,
                                                        tiny_host):
    add_task_with_data(window, "probs", sentiment_file)
    add_random_version(window, tiny_host, "probs", 21)
    page = window.playground
    page.compare.setChecked(False)
    page.max_tokens.setValue(2)
    page.input.setPlainText("great acting")
    page.set_task("probs")
    seen: list[tuple[str, int]] = []
    page.sig_finished.connect(lambda _texts: seen.append((page.status.text(),
                                                          len(page.bars.bars))))
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    status, bars = seen[-1]
    assert status.startswith("Done") and bars == 2


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
    stopped_while_running: list[bool] = []

    def stop_at_the_first_text() -> None:
        # Stop as the first text streams in: the tiny model can write all its tokens between
        # two polls of a waitUntil, and then there is nothing left to stop.
        if output.toPlainText() and not stopped_while_running:
            stopped_while_running.append(page.stop_button.isEnabled())
            QTimer.singleShot(0, page.stop_button.click)  # once the event is handled

    output.textChanged.connect(stop_at_the_first_text)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as finished:
        page.run()
    output.textChanged.disconnect(stop_at_the_first_text)
    assert stopped_while_running == [True]
    assert page.status.text().startswith("Stopped")
    assert finished.args[0][0] == output.toPlainText() != ""
    assert page.run_button.isEnabled() and not page.stop_button.isEnabled()


def test_the_history_keeps_runs_across_a_restart_and_brings_one_back(qtbot, window,
                                                                     sentiment_file, tiny_host):
    from desktop.pages.playground.history import HISTORY_KEY, HistoryList

    add_task_with_data(window, "remembered", sentiment_file, kind="generate")
    add_random_version(window, tiny_host, "remembered", 41)
    add_random_version(window, tiny_host, "remembered", 42)
    window.session.notify_library_changed()
    page = window.playground
    page.history.clear_history()
    page.compare.setChecked(False)
    page.set_task("remembered")
    page.version.setCurrentIndex(1)  # v1, not the active v2
    page.max_tokens.setValue(3)
    page.temperature.setValue(0.0)
    page.stop.setText("###")
    page.input.setPlainText("first input")
    with qtbot.waitSignal(page.sig_finished, timeout=60_000) as first:
        page.run()
    page.version.setCurrentIndex(0)
    page.input.setPlainText("second input")
    page.max_tokens.setValue(2)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    entries = page.history.entries
    assert [(e.task, e.version, e.text) for e in entries] == [
        ("remembered", 2, "second input"), ("remembered", 1, "first input")]
    assert entries[1].outputs[0].startswith(first.args[0][0])
    # A new window's history (the same settings file) lists the same runs.
    again = HistoryList(window.settings)
    assert [e.text for e in again.entries] == ["second input", "first input"]
    assert again.item(1).text().split("\n")[0].endswith("remembered v1")
    assert again.item(1).text().split("\n")[1].startswith("first input →")
    page.input.setPlainText("something else")
    page.history.sig_restore.emit(page.history.item(1).data(0x0100))
    assert page.input.toPlainText() == "first input"
    assert page.version.currentData() == 1 and page.max_tokens.value() == 3
    assert page.stop.text() == "###"
    assert page.outputs[PROMPT_BOX].toPlainText() == entries[1].outputs[0]
    assert "From the history" in page.status.text()
    window.settings.setValue(HISTORY_KEY, "{not json")  # a damaged setting loses only history
    assert HistoryList(window.settings).entries == []
