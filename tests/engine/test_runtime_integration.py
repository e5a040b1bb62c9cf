"""The embedded model applies two example tasks (one classify, one generate; one prompt, one
prefix) to a small CSV in one mixed-batch run. Prompts start from the instruction text, as a
new task's first training step would; the shipped example data defines the tasks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.apply import apply_file, read_table
from engine.runtime import GenRow, Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"
TEXTS = ["Great value for the price.", "Blurry pictures and a confusing story.",
         "name[The Mill], food[Japanese], area[city centre]", "I loved every minute of it."]


@pytest.fixture
def one_thread():
    """One torch thread: on a few shared cores, more threads mostly wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.integration
def test_two_example_tasks_in_one_mixed_run(tmp_path, default_host, one_thread):
    from engine.library import Library
    from engine.prompt_init import initial_tensor
    from engine.prompts import ModelGeometry, SoftPrompt

    if not (EXAMPLES / "sentiment.csv").is_file():
        pytest.skip("the example datasets are not in resources/examples")
    lib = Library(tmp_path / "lib")
    lib.create_task("sentiment", kind="classify", labels=["positive", "negative"],
                    instruction="Is this review positive or negative?",
                    data=EXAMPLES / "sentiment.csv")
    lib.create_task("restaurant", instruction="Describe the restaurant in one sentence.",
                    data=EXAMPLES / "restaurant_descriptions.jsonl")
    for name, method in (("sentiment", "prompt"), ("restaurant", "prefix")):
        task = lib.get_task(name)
        tensor = initial_tensor(default_host, method, 8, "text", task)
        prompt = SoftPrompt(method, tensor, ModelGeometry.of(default_host), task=name,
                            init="text")
        lib.add_version(name, prompt.to_bytes())

    src = tmp_path / "reviews.csv"
    with src.open("w", newline="") as fh:
        csv.writer(fh).writerows([["review"], *[[t] for t in TEXTS]])
    out = tmp_path / "out.csv"
    runtime = Runtime(default_host, lib)
    result = apply_file(runtime, ["sentiment", "restaurant"], src, "review", out,
                        batch_size=4, max_new_tokens=12)
    assert result.complete and result.done == len(TEXTS)
    rows = read_table(out).rows
    assert [r["review"] for r in rows] == TEXTS
    assert all(r["sentiment"] in ("positive", "negative") for r in rows)
    assert all(0.5 <= float(r["sentiment_probability"]) <= 1.0 for r in rows)
    alone = runtime.generate([GenRow(TEXTS[2], "restaurant", max_new_tokens=12)])[0]
    assert rows[2]["restaurant"] == alone.text.strip() != ""
