"""``promptbank train`` / ``continue`` on the tiny model: --json summary, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from tests.conftest import TEST_DEVICE
from tests.engine.train_helpers import make_library, write_jsonl


@pytest.fixture
def lib_dir(tmp_path):
    make_library(tmp_path)
    return str(tmp_path / "lib")


def _cli(capsys, tiny_model_dir, lib_dir, *argv):
    code = main(["--library", lib_dir, "--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                 "--json", *argv])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else None


def test_train_json_summary(capsys, tiny_model_dir, lib_dir):
    code, payload = _cli(capsys, tiny_model_dir, lib_dir, "train", "sentiment", "--method",
                         "prompt", "--length", "3", "--init", "labels", "--steps", "4",
                         "--lr", "0.2", "--batch-size", "4", "--micro-batch", "2",
                         "--eval-every", "2", "--seed", "1", "--mode", "standard")
    assert code == 0
    assert set(payload) >= {"task", "version", "steps", "best_metric", "metric_name",
                            "tokens_per_s"}
    assert payload["task"] == "sentiment" and payload["version"] == 1 and payload["steps"] == 4
    assert payload["metric_name"] == "accuracy" and 0 <= payload["best_metric"] <= 1

    from engine.library import Library

    version = Library(lib_dir).get_version("sentiment")
    assert version.method == "prompt" and version.length == 3 and version.init == "labels"
    assert Library(lib_dir).get_run(payload["run_id"]).config["train"]["micro_batch"] == 2

    data = write_jsonl(Path(lib_dir).parent / "more.jsonl",
                       [("great acting", "positive"), ("bad film", "negative")] * 4)
    code, payload = _cli(capsys, tiny_model_dir, lib_dir, "continue", "sentiment", "--data",
                         str(data), "--steps", "2", "--batch-size", "4", "--replay", "0.3")
    assert code == 0 and payload["version"] == 2
    assert "gain_new" in payload and "forgetting_old" in payload


def test_resume_from_the_cli(capsys, tiny_model_dir, lib_dir, tiny_host):
    from engine.library import Library
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob

    lib = Library(lib_dir)
    job = TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=5, batch_size=4, eval_every=0))
    job.step()
    job.cancel()
    code, payload = _cli(capsys, tiny_model_dir, lib_dir, "train", "sentiment", "--resume",
                         str(job.run_id))
    assert code == 0 and payload["steps"] == 5
    assert Library(lib_dir).get_run(job.run_id).status == "done"


@pytest.mark.parametrize("argv, message", [
    (["train", "nope", "--steps", "1"], "nope"),
    (["train", "sentiment", "--steps", "0"], "steps"),
    (["train", "sentiment", "--init", "task:missing"], "missing"),
    (["train", "sentiment", "--resume", "99"], "99"),
    (["continue", "sentiment", "--data", "/no/such/file.jsonl"], "no trained prompt"),
])
def test_bad_input_exits_2_and_changes_nothing(capsys, tiny_model_dir, lib_dir, argv, message):
    from engine.library import Library

    before = (Library(lib_dir).list_runs(), Library(lib_dir).list_versions("sentiment"))
    code, payload = _cli(capsys, tiny_model_dir, lib_dir, *argv)
    assert code == 2 and message in payload["error"]
    assert (Library(lib_dir).list_runs(), Library(lib_dir).list_versions("sentiment")) == before


def test_preparation_progress_truncation_and_checkpoint_interval(capsys, tiny_model_dir,
                                                                 lib_dir):
    from engine.library import Library
    from engine.training.checkpointing import load_checkpoint

    argv = ["--library", lib_dir, "--model", str(tiny_model_dir), "--device", TEST_DEVICE,
            "train", "sentiment", "--method", "prompt", "--length", "2", "--steps", "3",
            "--batch-size", "4", "--eval-every", "0", "--max-length", "21",
            "--checkpoint-every", "2", "--mode", "standard"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rows = len(Library(lib_dir).examples("sentiment", "train"))
    assert f"preparing rows: {rows:,} of {rows:,}" in captured.err
    # Every row is 22 tokens or more in the tiny model's chat format.
    note = (f"{rows} of {rows} training rows were longer than 21 tokens and lost the start of "
            "their input (--max-length).")
    assert note in captured.err and note in captured.out
    run = Library(lib_dir).list_runs()[-1]
    assert run.summary["truncated_rows"] == run.summary["rows"] == rows
    assert run.config["train"]["checkpoint_every"] == 2
    _, state = load_checkpoint(Library(lib_dir).checkpoint_dir(run.id))
    assert state["step"] == 2  # the last checkpoint: step 2 (none at the last step, 3)
    code, payload = _cli(capsys, tiny_model_dir, lib_dir, "train", "sentiment", "--method",
                         "prompt", "--length", "2", "--steps", "1", "--batch-size", "4",
                         "--eval-every", "0", "--max-length", "21", "--mode", "standard")
    assert code == 0 and payload["truncated_rows"] == payload["rows"] == rows
