"""Training with the defaults always starts: ``auto`` falls back from the instruction to the
labels, the task's outputs or vocabulary, and says which; an explicit ``text`` refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import PromptbankError
from engine.library import Library
from engine.prompts.initial import resolve_init
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.train_helpers import ECHO_ROWS, sentiment_rows, write_jsonl

QUICK = dict(method="prompt", length=4, steps=2, batch_size=4, eval_every=0)


@pytest.fixture
def bare(tmp_path) -> Library:
    """A classify and a generate task, neither with an instruction or description."""
    lib = Library(tmp_path / "lib")
    lib.create_task("senti", kind="classify", labels=["positive", "negative"])
    lib.add_dataset("senti", write_jsonl(tmp_path / "s.jsonl", sentiment_rows()),
                    eval_fraction=0.25, seed=0)
    lib.create_task("echo", kind="generate")
    lib.add_dataset("echo", write_jsonl(tmp_path / "e.jsonl", ECHO_ROWS * 2),
                    eval_fraction=0.25, seed=0)
    lib.create_task("empty", kind="generate")
    return lib


def test_auto_falls_back_in_order_and_says_why(bare):
    senti, echo = bare.get_task("senti"), bare.get_task("echo")
    assert resolve_init("auto", senti) == (
        "labels", "The task has no instruction, so the prompt starts from its label words.")
    init, why = resolve_init("auto", echo, ["one", "two"])
    assert init == "examples" and "name and a few training outputs" in why
    init, why = resolve_init("auto", bare.get_task("empty"))
    assert init == "vocab" and "common vocabulary" in why
    bare.update_task("echo", instruction="repeat it")
    assert resolve_init("auto", bare.get_task("echo"), ["one"]) == ("text", "")
    assert resolve_init("random", senti) == ("random", "")


def test_an_explicit_text_start_on_a_task_without_text_says_the_fix(bare):
    with pytest.raises(PromptbankError, match="no instruction or description") as err:
        resolve_init("text", bare.get_task("senti"))
    assert "task edit senti --instruction" in err.value.hint and "--init out" in err.value.hint


@pytest.mark.parametrize(("task", "start"), [("senti", "labels"), ("echo", "examples")])
def test_default_training_starts_and_records_its_start(tiny_host, bare, task, start):
    job = TrainingJob.start(bare, tiny_host, task, TrainConfig(**QUICK))
    assert job.config.init == start and job.summary["init_note"]
    result = run_job(job)
    assert bare.get_version(task, result.version).init == start
    run = bare.get_run(job.run_id)
    assert run.config["train"]["init"] == start and run.config["init_note"]


def test_the_cli_says_which_start_it_took(tiny_model_dir, bare):
    cmd = [sys.executable, "-m", "engine.cli", "train", "senti", "--model", str(tiny_model_dir),
           "--library", str(bare.root), "--method", "prompt", "--length", "4", "--steps", "2",
           "--batch-size", "4", "--eval-every", "0", "--threads", "1"]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["init_note"].startswith("The task has no instruction")
    refused = subprocess.run([*cmd, "--init", "text"], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "--instruction" in refused.stderr
