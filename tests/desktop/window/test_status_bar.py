"""The status bar: model loading, the running job, its time left and precision."""

from __future__ import annotations

import time

from desktop.jobs import JobState
from engine.api.session import ModelDescription

TINY = ModelDescription(name="tiny", fingerprint="f" * 32, hidden_size=32, parameters=10**6,
                        device="cpu", dtype="float32")


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
