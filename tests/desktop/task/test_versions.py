"""The versions table: eval set size and training time."""

from __future__ import annotations

import torch

from desktop.pages.task.versions import COLUMNS
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt


def test_versions_show_the_eval_set_size_and_the_training_time(offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("t")
    run = lib.create_run("t", {"train": {"steps": 4}})
    geometry = ModelGeometry("f" * 32, 32, 2, 2, 8)
    lib.add_version("t", SoftPrompt("prompt", torch.zeros(2, 32), geometry, task="t").to_bytes(),
                    run_id=run.id, metrics={"metric_name": "accuracy", "best_metric": 1.0,
                                            "eval_n": 6})
    lib.finish_run(run.id, "done", summary={"steps": 4, "train_seconds": 75.0})
    offline_window.session.notify_library_changed()
    page = offline_window.task_page
    page.set_task("t")
    metric = page.versions.item(0, COLUMNS.index("metric")).text()
    assert metric == "accuracy 100.0 % (95 % CI 61.0–100.0 %, 6 rows)"
    assert page.versions.item(0, COLUMNS.index("trained in")).text() == "1 min 15 s"
