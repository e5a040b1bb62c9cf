"""The worker's library ops in-process: every change the desktop makes goes through these."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from engine.api.registry import OP_SPECS
from engine.api.wire import Request
from engine.interop import export_version
from engine.library import Library
from engine.server.worker import Worker
from tests.conftest import TEST_DEVICE
from tests.engine.library_helpers import prompt_bytes, snapshot, write_jsonl
from tests.engine.worker_fixtures import make_library

ROWS = [{"input": f"text {i}", "output": "pos" if i % 2 else "neg"} for i in range(20)]


class InProcess:
    """A worker answering one request at a time on this thread."""

    def __init__(self, root: Path, model: str = "unused") -> None:
        self.out = io.StringIO()
        self.worker = Worker(argparse.Namespace(model=model, device=TEST_DEVICE, dtype="auto",
                                                library=root, trust_remote_code=False),
                             out=self.out)
        self.count = 0

    def ask(self, op: str, **args) -> dict:
        """The request's final event: ``{"type": "result"|"error", ...}``."""
        self.count += 1
        rid = f"r{self.count}"
        self.worker.scheduler.dispatch(Request(rid, op, args))
        events = [json.loads(line) for line in self.out.getvalue().splitlines()]
        final = [e for e in events if e["id"] == rid and e["type"] in ("result", "error")]
        assert len(final) == 1, events
        return final[0]

    def ok(self, op: str, **args) -> dict:
        event = self.ask(op, **args)
        assert event["type"] == "result", event
        return event

    def refused(self, op: str, words: str, **args) -> str:
        event = self.ask(op, **args)
        assert event["type"] == "error", event
        assert words in event["message"], event["message"]
        assert "\n" not in event["message"]
        return event["message"]


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def engine(root) -> InProcess:
    return InProcess(root)


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "sent.jsonl", ROWS)


def test_the_library_ops_are_long_ops_that_wait_for_a_step_boundary():
    for op in ("library_info", "create_task", "edit_task", "delete_task", "activate",
               "add_dataset", "import", "install_examples"):
        assert OP_SPECS[op].kind == "long", op


def test_library_info_creates_and_describes_the_library(engine, root):
    info = engine.ok("library_info")
    assert info["root"] == str(root) and info["tasks"] == 0 and info["schema_version"] >= 3
    assert (root / "library.db").is_file()


def test_create_task_with_its_first_dataset(engine, root, data):
    made = engine.ok("create_task", task="sent", kind="classify", data=str(data),
                     instruction="Is it positive?", eval_fraction=0.2, seed=3)
    assert made["task"]["labels"] == ["neg", "pos"]  # taken from the data
    assert made["datasets"][0]["eval_rows"] == 4 and made["datasets"][0]["seed"] == 3
    task = Library(root).get_task("sent")
    assert (task.kind, task.instruction) == ("classify", "Is it positive?")


def test_create_task_refuses_bad_input_and_changes_nothing(engine, root, data, tmp_path):
    engine.ok("create_task", task="taken")
    before = snapshot(Library(root))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"input": "a"}])
    engine.refused("create_task", "already exists", task="taken", description="another")
    engine.refused("create_task", "does not exist", task="x", data=str(tmp_path / "no.jsonl"))
    engine.refused("create_task", "bad.jsonl", task="x", data=str(bad))
    engine.refused("create_task", "needs at least two labels", task="x", kind="classify",
                   labels=["only"])
    engine.refused("create_task", "must be one of", task="x", kind="regress")
    engine.refused("create_task", "list of strings", task="x", labels=[1, 2])
    engine.refused("create_task", "need 'data'", task="x", input_column="text")
    engine.refused("create_task", "must not be empty", task="  ")
    engine.refused("create_task", "eval fraction", task="x", data=str(data), eval_fraction=1.5)
    assert snapshot(Library(root)) == before


def test_edit_and_rename_in_one_step(engine, root):
    engine.ok("create_task", task="sent")
    edited = engine.ok("edit_task", task="sent", new_name="sentiment", kind="classify",
                       labels=["a", "b"], description="d")
    assert edited["task"]["name"] == "sentiment" and edited["task"]["labels"] == ["a", "b"]
    assert [t.name for t in Library(root).list_tasks()] == ["sentiment"]
    engine.ok("create_task", task="other")
    before = snapshot(Library(root))
    # A failing rename also undoes the field changes asked with it.
    engine.refused("edit_task", "already exists", task="other", new_name="sentiment",
                   description="changed")
    engine.refused("edit_task", "needs 'new_name', 'as_new' or a field", task="other")
    engine.refused("edit_task", "no task named 'gone'", task="gone", description="x")
    engine.refused("edit_task", "at least two labels", task="other", kind="classify")
    assert snapshot(Library(root)) == before


def test_edit_as_new_makes_a_task_with_the_same_data_and_keeps_the_old(engine, root, data):
    engine.ok("create_task", task="sent", kind="classify", data=str(data))
    made = engine.ok("edit_task", task="sent", as_new="sent3", labels=["neg", "pos", "meh"])
    assert made["task"]["name"] == "sent3" and made["task"]["labels"] == ["neg", "pos", "meh"]
    assert len(made["datasets"]) == 1 and made["datasets"][0]["rows"] == len(ROWS)
    lib = Library(root)
    assert lib.get_task("sent").labels == ["neg", "pos"]
    assert lib.examples("sent3", "eval") == lib.examples("sent", "eval")
    engine.refused("edit_task", "'new_name' or 'as_new', not both", task="sent",
                   new_name="x", as_new="y")


def test_delete_task_and_refuse_while_it_trains(engine, root, data):
    engine.ok("create_task", task="doomed", data=str(data))
    engine.ok("create_task", task="busy", data=str(data))
    # A training job queued for 'busy' (never started here: no model is needed to queue it).
    engine.worker.scheduler.dispatch(Request("t", "train", {"task": "busy"}))
    message = engine.refused("delete_task", "has a queued training job (t)", task="busy")
    assert "Cancel it" in message
    engine.refused("edit_task", "training job", task="busy", new_name="renamed")
    assert engine.ok("delete_task", task="doomed")["deleted"] == "doomed"
    engine.refused("delete_task", "no task named 'doomed'", task="doomed")
    assert [t.name for t in Library(root).list_tasks()] == ["busy"]
    assert all(p.name.startswith("t2-") for p in (root / "datasets").iterdir())


def test_activate_a_version(engine, root):
    engine.ok("create_task", task="t")
    lib = Library(root)
    lib.add_version("t", prompt_bytes(seed=1))
    lib.add_version("t", prompt_bytes(seed=2))
    assert engine.ok("activate", task="t", version=2)["version"]["number"] == 2
    assert lib.get_version("t").number == 2
    engine.refused("activate", "has no version 7", task="t", version=7)
    engine.refused("activate", "must be at least 1", task="t", version=0)
    engine.refused("activate", "Missing argument 'version'", task="t")


def test_add_dataset_snapshot(engine, root, data, tmp_path):
    engine.ok("create_task", task="t")
    added = engine.ok("add_dataset", task="t", data=str(data), role="eval")
    assert added["added"] is True and added["dataset"]["eval_rows"] == 20
    assert engine.ok("add_dataset", task="t", data=str(data))["added"] is False  # same file
    engine.refused("add_dataset", "does not exist", task="t", data=str(tmp_path / "none.csv"))
    engine.refused("add_dataset", "must be one of", task="t", data=str(data), role="test")
    engine.refused("add_dataset", "no task named 'x'", task="x", data=str(data))
    assert len(Library(root).list_datasets("t")) == 1


def test_import_a_pack_and_a_prompt_file(tiny_model_dir, tiny_host, tmp_path):
    source = tmp_path / "source"
    make_library(source, tiny_host)
    pack = export_version(Library(source), "sent", "pack", tmp_path / "sent.pbpack")
    single = export_version(Library(source), "echo", "safetensors", tmp_path / "echo.safetensors")
    root = tmp_path / "library"
    engine = InProcess(root, model=str(tiny_model_dir))
    report = engine.ok("import", path=str(pack))
    assert report["format"] == "pack" and report["added"]
    report = engine.ok("import", path=str(single), task="mine")
    assert report["format"] == "safetensors" and report["added"] == ["mine v1"]
    assert {t.name for t in Library(root).list_tasks()} == {"sent", "mine"}
    engine.refused("import", "does not exist", path=str(tmp_path / "missing.pbpack"))


def test_install_examples_into_an_empty_library_only(engine, root, data, tmp_path):
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "sent.jsonl").write_bytes(data.read_bytes())
    (folder / "broken.jsonl").write_text("not json\n", encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"tasks": [
        {"name": "sentiment", "kind": "classify", "data": "sent.jsonl"},
        {"name": "broken", "data": "broken.jsonl"},
    ]}), encoding="utf-8")
    done = engine.ok("install_examples", folder=str(folder))
    assert done["installed"] == ["sentiment"]
    assert done["skipped"][0].startswith("broken: ") and "broken.jsonl" in done["skipped"][0]
    assert [t.name for t in Library(root).list_tasks()] == ["sentiment"]
    assert not any("broken" in p.name for p in (root / "datasets").iterdir())
    assert engine.ok("install_examples", folder=str(folder))["installed"] == []
    assert engine.ok("install_examples", folder=str(tmp_path / "none")) == {
        "id": "r3", "type": "result", "installed": [], "skipped": []}
