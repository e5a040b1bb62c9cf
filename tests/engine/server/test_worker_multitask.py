"""The engine process's ops for many tasks: a joint job (events per task, a task it trains
cannot be deleted meanwhile), universal prompts, and ranking starting points."""

from __future__ import annotations

import pytest

from engine.library import Library
from engine.server.client import RequestFailed
from tests.engine.worker_fixtures import make_library, start_worker, train_config, write_sentiment


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tiny_host, tmp_path_factory):
    root = tmp_path_factory.mktemp("worker-multi") / "library"
    lib = make_library(root, tiny_host)
    lib.create_task("more", kind="classify", labels=["positive", "negative"],
                    instruction="the mood", input_template="Mood of: {input}")
    lib.add_dataset("more", write_sentiment(root.parent / "more.jsonl", repeat=2))
    client = start_worker(tiny_model_dir, root)
    yield client, root
    client.close()


def test_train_joint_reports_each_task_and_guards_its_tasks(setup):
    client, root = setup
    config = train_config(3, mode="standard")
    joint = client.request("train_joint", {"tasks": ["sent", "more"], "config": config})
    assert joint.next_event(30).data["kind"] == "queued"
    with pytest.raises(RequestFailed, match="training job"):
        client.call("delete_task", task="more")
    events = [e.data for e in joint]
    started = next(e for e in events if e.get("kind") == "started")
    # Each task's rows are prepared, with progress, before the job's first step.
    lib = Library(root)
    sizes = [len(lib.examples(t, "train")) for t in ("sent", "more")]
    prepared = [(e["done"], e["total"]) for e in events[:events.index(started)]
                if e.get("kind") == "prepare"]
    assert prepared == [(n, n) for n in sizes]
    assert started["tasks"] == ["sent", "more"] and len(started["run_ids"]) == 2
    steps = [(e["task"], e["step"]) for e in events if e.get("kind") == "step"]
    assert steps == [(t, s) for s in (1, 2, 3) for t in ("sent", "more")]
    saved = [e["task"] for e in events if e.get("kind") == "saved"]
    final = events[-1]
    assert final["status"] == "done" and not final["failed"]
    assert final["tasks"] == ["sent", "more"] and final["run_ids"] == started["run_ids"]
    assert [t["task"] for t in final["results"]] == ["sent", "more"]
    assert sorted(saved) == ["more", "sent"]
    assert lib.get_run(final["results"][1]["run_id"]).joint_id == started["run_id"]
    with pytest.raises(RequestFailed, match="two or more"):
        client.call("train_joint", tasks=["sent"])


def test_universal_and_rank_starts(setup, tmp_path):
    client, root = setup
    config = train_config(2, length=4, method="prompt")
    events = [e.data for e in client.request("universal", {"task": "uni",
                                                          "sources": ["sent", "more"],
                                                          "config": config})]
    # One count over every source's rows.
    rows = sum(len(Library(root).examples(t, "train")) for t in ("sent", "more"))
    assert [(e["done"], e["total"]) for e in events if e.get("kind") == "prepare"][-1] == (
        rows, rows)
    created = events[-1]
    assert created["status"] == "done" and Library(root).get_task("uni").kind == "universal"
    assert set(created["summary"]["after"]) == {"sent", "more"}
    data = write_sentiment(tmp_path / "new.jsonl", repeat=1)
    ranked = client.request("rank_starts", {"data": str(data), "method": "prompt", "length": 4,
                                            "rows": 6, "steps": 2, "instruction": "mood?"})
    events = [e.data for e in ranked]
    probe = [(e["done"], e["total"]) for e in events if e.get("kind") == "probe"]
    assert probe[:2] == [(1, 8), (2, 8)] and probe[-1] == (8, 8)  # then the head start's
    final = events[-1]
    inits = [s["init"] for s in final["starts"]]
    assert final["best"] == inits[0] and {"universal:uni", "text", "task:sent"} <= set(inits)
    with pytest.raises(RequestFailed, match="either 'sources'"):
        client.call("universal", task="uni")
    with pytest.raises(RequestFailed, match="either 'task'"):
        client.call("rank_starts")
