"""A finished job's summary: its headline metric, gains, forgetting, rows cut, how it ended."""

from __future__ import annotations

from desktop.pages.training.page import describe_summary


def test_plain_run_summary():
    text = describe_summary({"steps": 40, "best": {"step": 30, "metric": 0.875, "n": 8},
                             "stop_reason": "steps done", "tokens_per_s": 1234.5,
                             "version": 2, "train_seconds": 125.2}, "accuracy")
    assert text == ("best accuracy 87.5 % (95 % CI 52.9–97.8 %, 8 rows) at step 30 · stopped: "
                    "steps done · 1,234 data tokens/s · trained for 2 min 5 s")
    assert "{" not in text


def test_continual_summary_shows_gain_and_forgetting():
    summary = {"best": {"step": 2, "metric": 0.9},
               "before": {"new": {"metric": 0.5, "n": 100}, "old": {"metric": 0.8, "n": 10}},
               "after": {"new": {"metric": 0.9, "n": 100}, "old": {"metric": 0.75, "n": 10}},
               "gain_new": 0.4, "forgetting_old": 0.05}
    lines = describe_summary(summary, "accuracy").split("<br>")
    assert lines[1] == ("new data: accuracy 50.0 % → 90.0 % (+40.0 points, more than the "
                        "noise on these rows (±11.4 points))")
    assert lines[2].startswith("old data: accuracy 80.0 % → 75.0 % (-5.0 points, within the "
                               "noise on these rows")


def test_empty_summary_says_nothing():
    assert describe_summary({}, "") == ""


def test_headline_metric_prefers_the_trainers_own_metric():
    from engine.api.measures import headline_metric

    trained = {"metric_name": "accuracy", "best_metric": 0.92, "eval_loss": 0.2, "steps": 300}
    assert headline_metric(trained) == "accuracy 92.0 %"
    assert headline_metric({**trained, "eval_n": 6}) == (
        "accuracy 92.0 % (95 % CI 52.0–99.2 %, 6 rows)")
    assert headline_metric({**trained, "eval_n": 200}) == (
        "accuracy 92.0 % (95 % CI 87.4–95.0 %, 200 rows)")
    assert headline_metric({"eval_loss": 0.5}) == "eval loss 0.5 nats/token"
    assert headline_metric({"notes": "x"}) == ""


def test_summary_counts_the_rows_cut_to_the_row_limit():
    text = describe_summary({"rows": 1200, "truncated_rows": 35, "train_seconds": 5}, "")
    assert text.split("<br>")[1] == ("35 of 1,200 training rows were longer than the row "
                                     "limit and lost the start of their input")
    assert "rows" not in describe_summary({"rows": 1200, "truncated_rows": 0}, "")


def test_a_joint_job_names_the_tasks_whose_rows_were_cut():
    from desktop.jobs import JobState
    from desktop.pages.training.page import joint_text
    from engine.api.training import JobOutcome

    job = JobState(task="a", status="done", tasks=["a", "b"])
    job.outcome = JobOutcome(tasks=["a", "b"], results=[
        JobOutcome(task="a", version=2, summary={"rows": 40, "truncated_rows": 0}),
        JobOutcome(task="b", version=1, summary={"rows": 1200, "truncated_rows": 35})])
    assert joint_text(job).split("<br>") == [
        "saved a v2, b v1",
        "b: 35 of 1,200 training rows were longer than the row limit and lost the start of "
        "their input"]


def test_a_job_says_cancelling_at_once_and_how_it_ended():
    from desktop.jobs import JobState
    from desktop.main_window import finished_text
    from desktop.pages.training.page import job_text

    waiting = JobState(task="t", status="queued", queue_position=2)
    assert job_text(waiting).endswith("· queued, 2 ahead")
    job = JobState(task="t", status="running", step=40, total=300)
    job.cancelling = True
    assert job_text(job).endswith("· cancelling…")
    job.status = "cancelled"
    assert finished_text(job) == ("Training of t cancelled at step 40; it can be resumed from "
                                  "the Training tab.")
    done = JobState(task="t", status="done", version=3)
    assert finished_text(done) == "Training of t finished: saved v3."
    failed = JobState(task="t", kind="continue", status="failed", message="Out of memory.")
    assert finished_text(failed) == "Continued training of t failed: Out of memory."
