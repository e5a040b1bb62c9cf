"""The catalogue: tasks, datasets and splits, versions and lineage, runs, evaluations, schema."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_utils import Database

from engine.errors import PromptbankError
from engine.library import Library, migrations
from tests.engine.library_helpers import prompt_bytes, write_jsonl

ROWS = [{"input": f"text {i}", "output": "pos" if i % 2 else "neg"} for i in range(20)]


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "lib")
    yield library
    library.close()


def test_new_library_has_folders_wal_foreign_keys_and_schema(lib):
    assert {p.name for p in lib.root.iterdir()} >= {"library.db", "prompts", "datasets",
                                                    "checkpoints", "exports"}
    assert lib.db.journal_mode == "wal"
    assert lib.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert lib.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert lib.schema_version == len(migrations._migrations)
    assert lib.db.execute("PRAGMA user_version").fetchone()[0] == lib.schema_version


def test_older_library_is_migrated_and_keeps_its_data(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    db = Database(root / "library.db")
    migrations.apply(db, stop_before="m002_indexes")
    db.execute("INSERT INTO tasks (name, kind, created) VALUES ('kept', 'generate', 'x')")
    db.close()
    lib = Library(root)
    assert lib.schema_version == len(migrations._migrations)
    assert [t.name for t in lib.list_tasks()] == ["kept"]
    assert "idx_runs_task" in {i.name for i in lib.db["runs"].indexes}


def test_newer_library_is_refused(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.db.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                   "VALUES ('promptbank', 'm999_future', 'x')")
    lib.close()
    with pytest.raises(PromptbankError, match="newer Promptbank"):
        Library(tmp_path / "lib")


def test_tasks_create_edit_rename_list(lib):
    lib.create_task("summ", description="d", instruction="Summarise.")
    task = lib.create_task("sent", kind="classify", labels=["neg", "pos"])
    assert task.labels == ["neg", "pos"] and task.kind == "classify"
    edited = lib.update_task("sent", description="sentiment", instruction="Classify.")
    assert (edited.description, edited.instruction) == ("sentiment", "Classify.")
    renamed = lib.rename_task("sent", "sentiment")
    assert renamed.id == task.id
    assert [t.name for t in lib.list_tasks()] == ["sentiment", "summ"]
    with pytest.raises(PromptbankError, match="no task named 'sent'"):
        lib.get_task("sent")
    with pytest.raises(PromptbankError, match="no editable field"):
        lib.update_task("summ", colour="x")
    with pytest.raises(PromptbankError, match="at least two labels"):
        lib.create_task("c", kind="classify", labels=["only"])
    with pytest.raises(PromptbankError, match="Unknown task kind"):
        lib.create_task("c", kind="regress")


def test_dataset_snapshot_and_deterministic_split(lib, tmp_path):
    src = write_jsonl(tmp_path / "sent.jsonl", ROWS)
    task = lib.create_task("sent", kind="classify", data=src)
    assert task.labels == ["neg", "pos"]  # taken from the data
    (ds,) = lib.list_datasets("sent")
    assert (ds.format, ds.rows, ds.train_rows, ds.eval_rows) == ("input/output", 20, 18, 2)
    assert (lib.root / ds.path).read_bytes() == src.read_bytes()
    train, held = lib.examples("sent"), lib.examples("sent", "eval")
    assert len(train) == 18 and len(held) == 2
    assert {e.input for e in train} | {e.input for e in held} == {r["input"] for r in ROWS}
    src.write_text("changed later\n")  # the snapshot is immutable
    assert lib.examples("sent", "eval") == held
    other = Library(lib.root)
    assert other.examples("sent", "eval") == held  # same split on every open


def test_eval_file_replaces_split_and_eval_role(lib, tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS[:10])
    held = write_jsonl(tmp_path / "e.jsonl", ROWS[10:13])
    lib.create_task("g", data=train, eval_path=held)
    assert len(lib.examples("g")) == 10 and len(lib.examples("g", "eval")) == 3
    extra = write_jsonl(tmp_path / "x.jsonl", ROWS[13:17])
    ds = lib.add_dataset("g", extra, role="eval")
    assert (ds.train_rows, ds.eval_rows) == (0, 4)
    assert len(lib.examples("g", "eval")) == 7
    assert len(lib.examples("g", "eval", dataset_id=ds.id)) == 4


def test_csv_dataset_with_chosen_columns(lib, tmp_path):
    (tmp_path / "d.csv").write_text("id,review,stars\n1,good,5\n2,bad,1\n3,ok,3\n")
    lib.create_task("r", data=tmp_path / "d.csv", input_column="review", output_column="stars",
                    eval_fraction=0)
    assert [(e.input, e.output) for e in lib.examples("r")] == [("good", "5"), ("bad", "1"),
                                                                 ("ok", "3")]


def test_versions_lineage_active_and_checksum(lib):
    lib.create_task("t")
    v1 = lib.add_version("t", prompt_bytes(seed=1), metrics={"loss": 2.0})
    data2 = prompt_bytes(seed=2)
    v2 = lib.add_version("t", data2, parent_id=v1.id)
    v3 = lib.add_version("t", prompt_bytes("prefix", 3, seed=3), parent_id=v2.id)
    assert [v.number for v in lib.list_versions("t")] == [1, 2, 3]
    assert (v3.method, v3.length, v3.hidden_size, v3.parent_id) == ("prefix", 3, 32, v2.id)
    assert v1.metrics == {"loss": 2.0} and v1.fingerprint == "f" * 32
    assert lib.get_version("t").id == v3.id  # no active version yet: the latest
    lib.set_active("t", 3)
    assert lib.get_version("t").number == 3 and lib.get_task("t").active_version_id == v3.id
    assert len({v.path for v in lib.list_versions("t")}) == 3  # nothing overwritten
    assert lib.read_version_bytes(v2) == data2
    with pytest.raises(PromptbankError, match="no version 9"):
        lib.get_version("t", 9)
    with pytest.raises(PromptbankError, match=r"not a Promptbank prompt file|damaged"):
        lib.add_version("t", b"\x10" + bytes(7) + b'{"__metadata__": {}}' + bytes(16))


def test_prompt_loads_with_softprompt_and_sha(lib):
    from engine.prompts.soft_prompt import SoftPrompt

    lib.create_task("t")
    version = lib.add_version("t", prompt_bytes(task="t"))
    prompt = SoftPrompt.load(lib.version_path(version), sha256=version.sha256)
    assert prompt.task == "t" and prompt.length == 4


def test_runs_metrics_and_evaluations(lib):
    lib.create_task("t")
    run = lib.create_run("t", {"steps": 3, "lr": 0.1})
    assert run.status == "running" and run.config["lr"] == 0.1
    for step in (1, 2, 3):
        lib.log_metrics(run.id, step, {"loss": 1.0 / step})
    lib.log_metrics(run.id, 3, {"loss": 0.25})  # a resumed run repeats a step
    assert [m["loss"] for m in lib.run_metrics(run.id)] == [1.0, 0.5, 0.25]
    lib.log_metrics(run.id, 3, {"metric": 0.9}, merge=True)  # the evaluation after the loss
    assert lib.run_metrics(run.id)[-1] == {"step": 3, "loss": 0.25, "metric": 0.9}
    version = lib.add_version("t", prompt_bytes(), run_id=run.id)
    done = lib.finish_run(run.id, "done", version_id=version.id, summary={"best": 0.25})
    assert (done.status, done.version_id, done.summary) == ("done", version.id, {"best": 0.25})
    assert done.finished is not None and lib.list_runs("t")[0].id == run.id
    with pytest.raises(PromptbankError, match="Unknown run status"):
        lib.finish_run(run.id, "exploded")
    ev = lib.add_evaluation("t", version.id, data_sha256="abc", baseline="none",
                            metrics={"accuracy": 0.9}, n=10)
    base = lib.add_evaluation("t", None, data_sha256="abc", baseline="instruction",
                              metrics={"accuracy": 0.5}, n=10)
    assert [e.id for e in lib.list_evaluations("t")] == [ev.id, base.id]
    assert lib.checkpoint_dir(run.id).parent == lib.root / "checkpoints"


def test_delete_removes_rows_then_files(lib, tmp_path):
    lib.create_task("t", data=write_jsonl(tmp_path / "d.jsonl", ROWS))
    version = lib.add_version("t", prompt_bytes())
    run = lib.create_run("t", {})
    lib.log_metrics(run.id, 1, {"loss": 1})
    lib.add_evaluation("t", version.id, data_sha256="x", baseline="none", metrics={}, n=1)
    lib.checkpoint_dir(run.id).mkdir(parents=True)
    keep = lib.create_task("other")
    lib.delete_task("t")
    assert [t.name for t in lib.list_tasks()] == [keep.name]
    for table in ("prompts", "datasets", "runs", "run_metrics", "evaluations"):
        assert lib.db[table].count == 0, table
    assert not list((lib.root / "prompts").iterdir())
    assert not list((lib.root / "datasets").iterdir())
    assert not lib.checkpoint_dir(run.id).exists()
    assert lib.db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_models_are_recorded(lib):
    lib.record_model({"fingerprint": "abc", "name": "tiny", "hidden_size": 32, "layers": 2})
    lib.record_model({"fingerprint": "abc", "name": "tiny2", "hidden_size": 32, "layers": 2})
    assert lib.get_model("abc")["name"] == "tiny2" and len(lib.list_models()) == 1


def test_damaged_catalogue_is_a_clear_error(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (root / "library.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PromptbankError, match="damaged"):
        Library(root)
    assert sqlite3  # the error above is not a raw sqlite3.DatabaseError


def test_a_task_copied_with_new_labels_keeps_the_data_and_split_and_leaves_the_original(
        lib, tmp_path):
    rows = [*ROWS, {"input": "meh", "output": "neutral"}]
    lib.create_task("sent", kind="classify", labels=["neg", "pos"],
                    data=write_jsonl(tmp_path / "two.jsonl", ROWS), eval_fraction=0.25, seed=3)
    lib.add_dataset("sent", write_jsonl(tmp_path / "train.jsonl", ROWS[:12]),
                    eval_path=write_jsonl(tmp_path / "held.jsonl", ROWS[12:]))
    version = lib.add_version("sent", prompt_bytes())
    copy = lib.copy_task("sent", "sent3", labels=["neg", "pos", "neutral"])
    assert copy.labels == ["neg", "pos", "neutral"] and copy.id != lib.get_task("sent").id
    assert lib.get_task("sent").labels == ["neg", "pos"]  # the original is unchanged
    assert lib.list_versions("sent3") == [] and lib.list_versions("sent") == [version]
    for split in ("train", "eval"):  # the same rows on each side of the same split
        assert lib.examples("sent3", split) == lib.examples("sent", split)
    assert [d.name for d in lib.list_datasets("sent3")] == ["two.jsonl", "train.jsonl"]
    assert lib.list_datasets("sent3")[1].eval_path.endswith("-eval-held.jsonl")
    # The copy's data must fit its labels; a failed copy leaves nothing behind.
    lib.add_dataset("sent3", write_jsonl(tmp_path / "three.jsonl", rows))
    with pytest.raises(PromptbankError, match="'neutral', which is not one of the task's"):
        lib.copy_task("sent3", "back", labels=["neg", "pos"])
    with pytest.raises(PromptbankError, match="already exists"):
        lib.copy_task("sent", "sent3", description="x")
    with pytest.raises(PromptbankError, match="at least two labels"):
        lib.copy_task("sent", "one", labels=["neg"])
    assert [t.name for t in lib.list_tasks()] == ["sent", "sent3"]
