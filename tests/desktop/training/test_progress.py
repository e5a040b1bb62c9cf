"""The training page while a run prepares and steps."""

from __future__ import annotations

from desktop.pages.training.page import describe_summary, device_text
from engine.api.session import DeviceJob, DeviceLine
from engine.model.chat import ENCODE_CHUNK
from tests.desktop.conftest import SENTIMENT, write_jsonl, writer
from tests.desktop.helpers import QUICK, TRAIN_MS, add_task_with_data


def test_the_training_page_shows_rows_prepared_then_steps_and_rows_cut(qtbot, window,
                                                                       tmp_path):
    data = write_jsonl(tmp_path / "many.jsonl", SENTIMENT * 60)
    add_task_with_data(window, "prepared", data)
    rows = len(writer(window).examples("prepared", "train"))
    assert rows > ENCODE_CHUNK  # so the rows come in more than one chunk
    page = window.training
    seen = []

    def record(job) -> None:
        if job.task == "prepared":
            seen.append((job.preparing, job.total, page.progress.value(), page.stats.text(),
                         page.list.currentItem().text()))

    window.jobs.sig_job_changed.connect(record)
    try:
        job = window.jobs.start("prepared", {**QUICK, "steps": 2, "eval_every": 0,
                                             "max_length": 21})
        with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
            pass
    finally:
        window.jobs.sig_job_changed.disconnect(record)
    assert job.status == "done", job.message
    preparing = [s for s in seen if s[0]]
    assert [s[3] for s in preparing][:2] == [f"preparing rows: {ENCODE_CHUNK:,} of {rows:,}",
                                             f"preparing rows: {rows:,} of {rows:,}"]
    assert preparing[0][2] == 1000 * ENCODE_CHUNK // rows
    assert all(s[1] == 0 and "preparing rows" in s[4] for s in preparing)
    # Rows never became the step total: steps counted to 2 once it started.
    assert {s[1] for s in seen if not s[0]} <= {0, 2} and job.total == 2
    # Every row of the tiny model's chat format is 22 tokens or more: all were cut to 21.
    cut = f"{rows:,} of {rows:,} training rows were longer than the row limit"
    assert cut in page.stats.text()
    summary = writer(window).get_run(job.run_id).summary  # the catalogue's run says it too
    assert cut in describe_summary(summary, "")


def test_the_training_page_shows_the_engines_devices(qtbot, window):
    page = window.training
    qtbot.waitUntil(lambda: "CPU" in page.devices.text(), timeout=30_000)
    assert "GB in use" in page.devices.text() and "no jobs" in page.devices.text()


def test_a_device_line_names_its_gpu_memory_and_every_job():
    line = DeviceLine(device="cuda:0", name="NVIDIA H100", gpu="1", used_bytes=30 * 2**30,
                      total_bytes=80 * 2**30, engine_bytes=12 * 2**30,
                      jobs=[DeviceJob(task="sent", state="running", step=40, total=300),
                            DeviceJob(task="ag", state="queued", library="5f3a2b1c",
                                      user="bob")])
    assert device_text(line) == ("GPU 1 (NVIDIA H100): 30.0 of 80.0 GB in use, 12.0 GB by "
                                 "this engine · sent (running, step 40 of 300); ag of another "
                                 "library (bob, queued)")
