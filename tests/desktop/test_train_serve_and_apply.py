"""The desktop driving the real engine process (tiny model): train, cancel, playground,
batch apply, crash and restart, responsiveness while training."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from tests.desktop.conftest import writer
from tests.desktop.helpers import QUICK, TRAIN_MS, add_random_version, add_task_with_data


class StallMeter:
    """Measures the longest gap between ticks of a 10 ms QTimer (event-loop stalls)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def test_train_to_completion_shows_new_version(qtbot, window, sentiment_file, capsys):
    add_task_with_data(window, "sentiment", sentiment_file)
    meter = StallMeter()
    job = window.jobs.start("sentiment", QUICK)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
        pass
    longest = meter.stop()
    with capsys.disabled():
        print(f"\n[desktop] longest event-loop stall while training: {longest * 1000:.1f} ms")
    assert job.status == "done", job.message
    assert job.version == 1
    assert job.losses and job.run_id is not None
    assert job.step == QUICK["steps"]
    # The library list now shows the trained version.
    window.library.select("sentiment")
    assert "v1" in window.library.list.currentItem().text()
    assert window.task_page.versions.rowCount() == 1
    # The finished run keeps its curve in the catalogue.
    metrics = window.session.library.run_metrics(job.run_id)
    assert any("loss" in m for m in metrics)
    assert longest < 2.0  # generous: the GUI never waits on the engine


def test_cancel_training_job(qtbot, window, sentiment_file):
    add_task_with_data(window, "to-cancel", sentiment_file)
    job = window.jobs.start("to-cancel", {**QUICK, "steps": 5000, "eval_every": 0})
    qtbot.waitUntil(lambda: job.step >= 1, timeout=TRAIN_MS)
    window.training.select_job(job)
    assert window.training.cancel_button.isEnabled()
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000):
        window.training.cancel_button.click()
    assert job.status == "cancelled"
    assert window.session.library.get_run(job.run_id).status == "cancelled"
    assert window.session.library.list_versions("to-cancel") == []
    assert window.training.resume_button.isEnabled()


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


def test_batch_apply_writes_file(qtbot, window, tmp_path):
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


def test_inspect_nearest_tokens(qtbot, window, sentiment_file, tiny_host):
    add_task_with_data(window, "gamma", sentiment_file)
    add_random_version(window, tiny_host, "gamma", 3)
    page = window.inspect
    page.set_task("gamma")
    assert page.tokens.rowCount() == 4  # norms read locally, one row per virtual token
    page.request_tokens()
    qtbot.waitUntil(lambda: page.tokens.item(0, 1) is not None, timeout=30_000)
    assert page.tokens.item(0, 1).text()


def test_export_version_as_pack_through_the_engine(qtbot, window, sentiment_file, tiny_host,
                                                   tmp_path):
    add_task_with_data(window, "to-export", sentiment_file)
    add_random_version(window, tiny_host, "to-export", 4)
    page = window.task_page
    page.set_task("to-export")
    target = tmp_path / "delta.pbpack"
    page.start_export(1, "pack", target)
    qtbot.waitUntil(lambda: "Exported to" in page.notice.text(), timeout=30_000)
    assert target.is_file() and str(target) in page.notice.text() and not page.error.text()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    page.start_export(1, "kobold", blocker / "delta.zip")
    qtbot.waitUntil(lambda: "Export failed" in page.error.text(), timeout=30_000)


def test_kill_engine_shows_banner_and_restart(qtbot, window):
    assert not window.banner.isVisible()
    with qtbot.waitSignal(window.engine.sig_crashed, timeout=10_000):
        window.engine.kill()
    assert window.banner.isVisible()
    assert "killed" in window.banner.label.text() or "crashed" in window.banner.label.text()
    assert window.status.state.text().startswith("Engine: error")
    with qtbot.waitSignal(window.session.sig_model_changed, timeout=90_000,
                          check_params_cb=bool):
        window.banner.restart.click()
    assert not window.banner.isVisible()
    assert window.status.state.text() == "Engine: ready"


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
