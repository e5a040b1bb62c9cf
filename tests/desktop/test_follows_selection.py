"""Every view follows the selection (issue 13, point 2): switching task or state changes what
is shown, and no two fields tell different stories."""

from __future__ import annotations

import time

from desktop.jobs import JobState
from desktop.pages.playground.page import BASE_BOX, PROMPT_BOX
from desktop.pages.training.curves import CurveData, Curves
from engine.api.session import ModelDescription
from engine.library import Library
from tests.desktop.conftest import write_jsonl
from tests.desktop.helpers import add_random_version, add_task_with_data

TINY = ModelDescription(name="tiny", fingerprint="f" * 32, hidden_size=32, parameters=10**6,
                        device="cpu", dtype="float32")


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


def test_curves_reset_their_axes_per_job_and_keep_accuracy_on_0_to_1(qtbot):
    curves = Curves()
    qtbot.addWidget(curves)
    curves.resize(800, 300)
    curves.show()
    losses = [(s, 10.0 - s / 20) for s in range(1, 101)]
    accuracy = [(20, 0.5), (40, 0.7), (60, 0.9)]
    curves.set_data(CurveData("job:1", {"a": losses}, {"a": accuracy}, "accuracy", 100))
    curves.flush()
    (x0, x1), (y0, y1) = curves.eval_plot.getViewBox().viewRange()
    assert (y0, y1) == (0.0, 1.0)
    assert x0 <= 0 and 100 <= x1 < 110
    curves.loss_plot.getViewBox().setXRange(40, 45)  # the user zoomed in on the first job
    curves.set_data(CurveData("job:2", {"b": [(1, 0.3), (2, 0.2)]}, {"b": [(2, 1.0)]},
                              "accuracy", 10))
    curves.flush()
    for plot in (curves.loss_plot, curves.eval_plot):  # both from step 0 to the new total
        (x0, x1), _ = plot.getViewBox().viewRange()
        assert x0 <= 0 and 10 <= x1 < 12
    (_, _), (y0, y1) = curves.eval_plot.getViewBox().viewRange()
    assert (y0, y1) == (0.0, 1.0)  # never down to -0.1, even with one point at 1.0
    assert list(curves.loss_curves) == ["b"]
    curves.set_data(CurveData("job:3", {"c": [(1, 5.0)]}, {"c": [(1, 4.0), (2, 3.0)]},
                              "eval_loss", 2))
    curves.flush()

    def fitted() -> bool:  # a loss is fitted to its values (pyqtgraph fits at the next paint)
        y0, y1 = curves.eval_plot.getViewBox().viewRange()[1]
        return y0 > 2.5 and y1 < 4.5

    qtbot.waitUntil(fitted, timeout=2000)


def test_status_bar_says_loading_until_the_model_is_there(offline_window):
    window = offline_window
    status = window.status
    window.engine.sig_state.emit("ready", "")
    window.session.set_model(None)  # the engine said hello; the model is still loading
    assert status.state.text() == "Engine: loading the model"
    assert status.model.text() == "Loading model…"
    window.session.set_model(TINY)
    assert status.state.text() == "Engine: ready"
    assert status.model.text().startswith("tiny")
    window.session.set_model(None, "no such folder")
    assert status.state.text() == "Engine: ready"
    assert "failed to load: no such folder" in status.model.text()


def test_status_bar_progress_shows_the_running_job(offline_window):
    window = offline_window
    window.session.set_model(TINY)
    window.engine.sig_state.emit("ready", "")
    running = JobState(task="a", status="running", step=51, total=100)
    queued = JobState(task="b", status="queued")
    window.jobs.jobs += [running, queued]
    window.jobs.sig_job_changed.emit(running)
    window.jobs.sig_job_changed.emit(queued)  # the last event is the queued job's
    try:
        assert window.status.state.text() == "Engine: training 51%"
        assert not window.status.progress.isHidden()
        assert window.status.progress.value() == 510
    finally:
        window.jobs.jobs.clear()  # closing the window must not ask about running jobs


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


def test_the_running_job_keeps_its_measured_eta():
    job = JobState(task="a", status="running", step=5, total=15, start_step=0)
    job.started_at = time.monotonic() - 10.0
    assert 19.0 < job.eta_s < 21.0  # 2 s a step measured, 10 steps left
    job.status = "done"
    assert job.eta_s is None and job.fraction == 1.0


def test_status_bar_shows_the_model_load_with_the_time_left(offline_window):
    from engine.api.session import LoadProgress

    offline_window.session.sig_load_progress.emit(
        LoadProgress(stage="converting the GGUF", fraction=0.4, eta_s=65.0))
    text = offline_window.status.model.text()
    assert text == "Loading model: converting the GGUF (40%, about 1 min 5 s left)"


def test_status_bar_says_why_the_model_runs_in_its_precision(offline_window):
    from engine.api.session import ModelDescription

    model = ModelDescription(name="m", parameters=135_000_000, device="cpu", dtype="bfloat16",
                             dtype_reason="bfloat16: float32 would need 3.1 GB of the 2.0 GB "
                             "free", quantization="8bit")
    offline_window.session.set_model(model)
    status = offline_window.status
    assert status.device.text() == "cpu · bfloat16 · base in 8bit"
    assert status.device.toolTip().startswith("bfloat16: float32 would need")


def test_the_window_fits_a_laptop_screen_and_no_page_is_squeezed(qtbot, offline_window):
    window = offline_window
    for width, height in ((1024, 700), (1280, 720)):
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width, h=height: (window.width(), window.height()) == (w, h))
        assert window.statusBar().geometry().bottom() < height  # the status bar is on screen
        for key, page in window.pages.items():
            window.show_task_on(key, "")
            qtbot.waitUntil(page.isVisible)
            hint = page.minimumSizeHint()
            # Too big for the screen, a page scrolls rather than shrinking below its minimum
            # (where labels would be cut to "s…").
            assert page.width() >= hint.width() and page.height() >= hint.height(), key
    assert window.minimumSizeHint().width() <= 1024 and window.minimumSizeHint().height() <= 700


def test_f1_opens_the_guide_and_about_names_the_library(qtbot, offline_window):
    from PySide6.QtCore import Qt

    from desktop.help.guide import GuideDialog, about_text

    qtbot.keyClick(offline_window, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: any(isinstance(w, GuideDialog) and w.isVisible()
                                for w in offline_window.findChildren(GuideDialog)))
    guide = offline_window.findChildren(GuideDialog)[0]
    text = guide.text.toPlainText()
    assert "prompt or prefix" in text and "Replay" in text and "95 % interval" in text
    about = about_text(offline_window.session)
    assert str(offline_window.session.library.root) in about and "Model: not loaded" in about


def test_the_loss_is_smoothed_over_its_faint_raw_trace_and_can_go_log_scale(qtbot):
    import numpy as np

    from desktop.pages.training.curves import smoothed

    assert smoothed(np.array([2.0]))[0] == 2.0  # no pull towards zero at the start
    noisy = np.array([1.0, 3.0] * 50)
    assert np.ptp(smoothed(noisy)[50:]) < 0.5 < np.ptp(noisy)
    curves = Curves()
    qtbot.addWidget(curves)
    curves.set_data(CurveData("job:1", {"a": [(s, float(s % 2) + 1) for s in range(1, 41)]},
                              {}, "accuracy", 40))
    curves.flush()
    raw = curves.raw_curves["a"].getData()[1]
    shown = curves.loss_curves["a"].getData()[1]
    assert list(raw[:4]) == [2.0, 1.0, 2.0, 1.0] and np.ptp(shown[-10:]) < np.ptp(raw[-10:])
    assert curves.raw_curves["a"].opts["pen"].color().alpha() < 255
    curves.log_scale.setChecked(True)
    assert curves.loss_plot.getPlotItem().ctrl.logYCheck.isChecked()
