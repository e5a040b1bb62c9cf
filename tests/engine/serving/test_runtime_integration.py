"""The embedded model applies two shipped example tasks (one classify, one generate, with their
trained prompts from resources/examples) to a small CSV in one mixed-batch run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.serving.apply import apply_file, read_table
from engine.serving.runtime import GenRow, Runtime

EXAMPLES = Path(__file__).resolve().parents[3] / "resources" / "examples"
TEXTS = ["Great value for the price.", "Blurry pictures and a confusing story.",
         "name[The Mill], food[Japanese], priceRange[cheap], area[riverside], familyFriendly[yes]",
         "I loved every minute of it."]


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
    from engine.library.examples import install_examples

    lib = Library(tmp_path / "lib")
    assert {"sentiment", "restaurant-description"} <= set(install_examples(lib, EXAMPLES).installed)
    src = tmp_path / "reviews.csv"
    with src.open("w", newline="") as fh:
        csv.writer(fh).writerows([["review"], *[[t] for t in TEXTS]])
    out = tmp_path / "out.csv"
    runtime = Runtime(default_host, lib)
    result = apply_file(runtime, ["sentiment", "restaurant-description"], src, "review", out,
                        batch_size=4, max_new_tokens=24)
    assert result.complete and result.done == len(TEXTS)
    rows = read_table(out).rows
    assert [r["review"] for r in rows] == TEXTS
    assert [r["sentiment"] for r in rows[:2]] == ["positive", "negative"]
    assert rows[3]["sentiment"] == "positive"
    assert all(0.5 <= float(r["sentiment_probability"]) <= 1.0 for r in rows)
    alone = runtime.generate([GenRow(TEXTS[2], "restaurant-description",
                                     max_new_tokens=24)])[0]
    assert rows[2]["restaurant-description"] == alone.text.strip()
    assert rows[2]["restaurant-description"].startswith("The Mill is a cheap Japanese")
