"""``promptbank train A B`` (one joint job), ``universal create|update``, ``suggest-init`` and
few-shot mode from the command line: --json summaries, resume, bad input."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.library import Library
from tests.conftest import TEST_DEVICE
from tests.engine.train_helpers import add_echo_task, make_library, write_jsonl

FAST = ["--method", "prompt", "--length", "2", "--steps", "2", "--batch-size", "4",
        "--eval-every", "0"]


@pytest.fixture
def lib_dir(tmp_path):
    lib = add_echo_task(make_library(tmp_path), tmp_path, repeat=5)
    lib.create_task("spam", kind="classify", labels=["spam", "ham"], instruction="spam?")
    lib.add_dataset("spam", write_jsonl(tmp_path / "spam.jsonl",
                                        [("win money", "spam"), ("see you", "ham")] * 10))
    return str(tmp_path / "lib")


def _cli(capsys, tiny_model_dir, lib_dir, *argv):
    code = main(["--library", lib_dir, "--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                 "--json", *argv])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    return code, json.loads(out[-1]) if out else None, captured.err


def test_train_several_tasks_is_one_joint_job(capsys, tiny_model_dir, lib_dir):
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "train", "sentiment", "echo",
                            "--mode", "standard", *FAST)
    assert code == 0 and not payload["failed"]
    assert [t["task"] for t in payload["tasks"]] == ["sentiment", "echo"]
    lib = Library(lib_dir)
    runs = [lib.get_run(t["run_id"]) for t in payload["tasks"]]
    assert {r.joint_id for r in runs} == {runs[0].id} and {r.status for r in runs} == {"done"}
    assert lib.get_version("echo").length == 2


def test_a_joint_job_prepares_and_reports_cut_rows_per_task(capsys, tiny_model_dir, lib_dir):
    argv = ["--library", lib_dir, "--model", str(tiny_model_dir), "--device", TEST_DEVICE,
            "train", "sentiment", "spam", "--mode", "standard", *FAST, "--max-length", "23"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lib = Library(lib_dir)
    runs = {lib.get_task_by_id(r.task_id).name: r for r in lib.list_runs()}
    # In the tiny model's chat format sentiment rows are 22 to 32 tokens, spam rows 21 or 23.
    assert runs["sentiment"].summary["truncated_rows"] > 0
    assert runs["spam"].summary["truncated_rows"] == 0
    for task in ("sentiment", "spam"):
        rows, cut = runs[task].summary["rows"], runs[task].summary["truncated_rows"]
        assert rows == len(lib.examples(task, "train"))
        assert f"preparing rows: {rows:,} of {rows:,}" in captured.err
        note = (f"{cut} of {rows} training rows were longer than 23 tokens and lost the start "
                "of their input (--max-length).")
        assert (f"{task}: {note}" in captured.err) == (note in captured.out) == (cut > 0)
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "train", "sentiment", "spam",
                            "--mode", "standard", *FAST, "--max-length", "23")
    assert code == 0 and [(t["rows"], t["truncated_rows"]) for t in payload["tasks"]] == [
        (runs[t].summary["rows"], runs[t].summary["truncated_rows"])
        for t in ("sentiment", "spam")]


def test_a_joint_job_resumes_from_the_cli(capsys, tiny_model_dir, lib_dir, tiny_host):
    from engine.training.config import TrainConfig
    from engine.training.joint import JointJob

    config = TrainConfig(method="prompt", length=2, steps=3, batch_size=4, eval_every=0)
    job = JointJob.start(Library(lib_dir), tiny_host, ["sentiment", "echo"], [config] * 2)
    job.step()
    job.cancel()
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "train", "echo", "--resume",
                            str(job.run_ids[1]))
    assert code == 0 and [t["steps"] for t in payload["tasks"]] == [3, 3]


def test_small_tasks_train_in_few_shot_mode(capsys, tiny_model_dir, lib_dir):
    code, payload, err = _cli(capsys, tiny_model_dir, lib_dir, "train", "spam", "--method",
                              "prompt", "--length", "2", "--steps", "3")
    assert code == 0 and "few-shot mode" in err
    config = Library(lib_dir).get_run(payload["run_id"]).config["train"]
    assert config["mode"] == "few-shot" and config["patience"] == 3 and config["steps"] == 3


def test_universal_create_update_and_suggest_init(capsys, tiny_model_dir, lib_dir):
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "universal", "create", "uni",
                            "--from", "sentiment,echo", *FAST)
    assert code == 0 and set(payload["sources"]) == {"sentiment", "echo"}
    assert payload["sources"]["echo"]["before"] is None
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "universal", "update", "uni",
                            "--add", "spam", "--steps", "1", "--batch-size", "4")
    assert code == 0 and payload["version"] == 2 and "gain_new" in payload
    assert all(v["before"] and v["after"] for v in payload["sources"].values())
    assert Library(lib_dir).get_version("uni", 2).metrics["sources"] == ["sentiment", "echo",
                                                                         "spam"]
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "compare", "uni")
    assert code == 0 and "v2 universal-after-spam" in {r["what"] for r in payload["evaluations"]}
    assert main(["--library", lib_dir, "compare", "uni"]) == 0
    assert "v1 universal-before-echo" in capsys.readouterr().out
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "suggest-init", "spam",
                            "--method", "prompt", "--length", "2", "--rows", "6", "--steps",
                            "1")
    assert code == 0 and payload["starts"][0]["why"].startswith("#1")
    assert "universal:uni" in {s["init"] for s in payload["starts"]}
    head_start = payload["starts"][0]["head_start"]
    assert head_start and payload["starts"][0]["steps_saved"] is not None
    assert main(["--library", lib_dir, "--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                 "suggest-init", "spam",
                 "--method", "prompt", "--length", "2", "--rows", "6", "--steps", "1"]) == 0
    assert head_start in capsys.readouterr().out
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, "train", "spam", "--init",
                            "universal:uni", "--steps", "1", "--batch-size", "4")
    assert code == 0 and Library(lib_dir).get_version("spam").init == "universal:uni"


@pytest.mark.parametrize("argv, message", [
    (["train", "sentiment", "nope", "--steps", "1"], "nope"),
    (["train", "sentiment", "echo", "--steps", "0"], "steps"),
    (["universal", "create", "u", "--from", "sentiment"], "at least two"),
    (["universal", "create", "u", "--from", "sentiment,echo", "--init", "mix"], "mix"),
    (["universal", "update", "echo", "--add", "spam"], "not a universal"),
    (["suggest-init", "nope"], "nope"),
])
def test_bad_input_exits_2_and_changes_nothing(capsys, tiny_model_dir, lib_dir, argv, message):
    before = (Library(lib_dir).list_runs(), Library(lib_dir).list_tasks())
    code, payload, _ = _cli(capsys, tiny_model_dir, lib_dir, *argv)
    assert code == 2 and message in payload["error"]
    assert (Library(lib_dir).list_runs(), Library(lib_dir).list_tasks()) == before


def test_train_help_names_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "universal:NAME" in text and "--mode" in text
