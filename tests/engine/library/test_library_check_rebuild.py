"""A lost catalogue is detected (never silently replaced by an empty one), `library check`
verifies every file, and `library rebuild` recreates the catalogue from the files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.catalogue import CatalogueLost, CatalogueMissing
from engine.library.check import check_library
from engine.library.rebuild import rebuild_catalogue
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.engine.library_helpers import TINY_GEOMETRY, prompt_bytes, snapshot, write_jsonl

ROWS = [{"input": f"text {i}", "output": "pos" if i % 2 else "neg"} for i in range(20)]


def versioned(task: str, seed: int, parent: str = "") -> bytes:
    geometry = ModelGeometry(**TINY_GEOMETRY)
    tensor = torch.randn(4, geometry.hidden_size, generator=torch.Generator().manual_seed(seed))
    return SoftPrompt("prompt", tensor, geometry, task=task, parent=parent,
                      init="random").to_bytes()


@pytest.fixture
def root(tmp_path) -> Path:
    """A library with two tasks: 'sent' (data split, two versions in a line) and 'summ'
    (a data file with a separate eval file, one prefix version), and a run."""
    root = tmp_path / "lib"
    lib = Library(root)
    lib.create_task("sent", kind="classify", data=write_jsonl(tmp_path / "sent.jsonl", ROWS))
    v1 = lib.add_version("sent", versioned("sent", 1))
    lib.add_version("sent", versioned("sent", 2, parent="sent@v1"), parent_id=v1.id)
    lib.create_task("summ", data=write_jsonl(tmp_path / "summ.jsonl", ROWS[:8]),
                    eval_path=write_jsonl(tmp_path / "summ-eval.jsonl", ROWS[8:12]))
    lib.add_version("summ", prompt_bytes("prefix", 3, task="summ"))
    lib.create_run("sent", {})
    lib.close()
    return root


def lose_catalogue(root: Path) -> None:
    for name in ("library.db", "library.db-wal", "library.db-shm"):
        (root / name).unlink(missing_ok=True)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for folder in ("prompts", "datasets") for p in sorted((root / folder).iterdir())}


@pytest.mark.parametrize("how", ["deleted", "empty file", "empty catalogue"])
def test_a_lost_catalogue_is_refused_not_replaced(root, how):
    files = files_of(root)
    lose_catalogue(root)
    if how == "empty file":
        (root / "library.db").write_bytes(b"")
    elif how == "empty catalogue":
        Library(root.parent / "fresh").close()
        shutil.copy(root.parent / "fresh" / "library.db", root / "library.db")
    for read_only in (False, True):
        with pytest.raises(CatalogueLost, match=r"lost its catalogue.*library rebuild") as info:
            Library(root, read_only=read_only)
        assert "6 file(s)" in str(info.value) and "\n" not in str(info.value)
    assert files_of(root) == files
    assert (root / "library.db").exists() == (how != "deleted")  # nothing new was created


def test_cli_says_the_catalogue_is_lost_instead_of_no_tasks(root, capsys):
    lose_catalogue(root)
    assert main(["--library", str(root), "task", "list"]) == 2
    captured = capsys.readouterr()
    assert "No tasks yet" not in captured.out
    assert "lost its catalogue" in captured.err and "promptbank library rebuild" in captured.err


def test_a_new_library_is_not_lost(tmp_path):
    with pytest.raises(CatalogueMissing):
        Library(tmp_path / "new", read_only=True)
    assert not (tmp_path / "new").exists()  # a read-only open creates nothing
    assert Library(tmp_path / "new").list_tasks() == []


def test_check_finds_nothing_wrong_in_a_sound_library(root):
    report = check_library(Library(root))
    assert report.ok and report.checked == 6
    assert (report.missing, report.changed, report.extra) == ([], [], [])


def test_check_reports_tampered_missing_and_extra_files(root, capsys):
    lib = Library(root)
    prompt = lib.version_path(lib.get_version("sent", 1))
    data = bytearray(prompt.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the tensor data: the header still reads fine
    prompt.write_bytes(bytes(data))
    dataset = lib.list_datasets("summ")[0]
    (root / dataset.eval_path).unlink()
    (root / "datasets" / "stray.jsonl").write_text("{}\n")
    report = check_library(lib)
    assert not report.ok
    assert report.changed == [lib.get_version("sent", 1).path]
    assert report.missing == [dataset.eval_path]
    assert report.extra == ["datasets/stray.jsonl"]
    assert main(["--library", str(root), "--json", "library", "check"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["changed"] == report.changed
    assert main(["--library", str(root), "library", "check"]) == 1
    text = capsys.readouterr().out
    assert f"changed since it was saved: {report.changed[0]}" in text
    assert f"missing: {dataset.eval_path}" in text


def test_rebuild_recreates_tasks_versions_lineage_and_datasets(root, capsys):
    before = Library(root)
    versions = {t.name: before.list_versions(t.name) for t in before.list_tasks()}
    train = before.examples("summ", "train")
    evals = before.examples("summ", "eval")
    before.close()
    lose_catalogue(root)
    assert main(["--library", str(root), "--json", "library", "rebuild"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["tasks"]) == ["sent", "summ"]
    assert (report["versions"], report["datasets"], report["skipped"]) == (3, 3, [])
    assert any("generate" in note for note in report["notes"])

    lib = Library(root)
    for name, old in versions.items():
        new = lib.list_versions(name)
        keep = ("number", "method", "length", "init", "fingerprint", "hidden_size", "path",
                "sha256", "created")
        assert [[getattr(v, k) for k in keep] for v in new] == \
               [[getattr(v, k) for k in keep] for v in old]
        assert lib.get_task(name).id == old[0].task_id  # files stay named by task id
    v1, v2 = lib.list_versions("sent")
    assert v2.parent_id == v1.id and v1.parent_id is None
    assert lib.examples("summ", "train") == train and lib.examples("summ", "eval") == evals
    assert len(lib.examples("sent", "train")) == 18 and len(lib.examples("sent", "eval")) == 2
    assert check_library(lib).ok
    assert lib.read_version_bytes(v2)  # readable, checksum as catalogued
    # The library works on: a new task gets a new id, its files do not collide.
    assert lib.create_task("third").id > max(t.id for t in lib.list_tasks() if t.name != "third")


def test_rebuild_skips_tampered_files_and_keeps_what_remains(root, caplog):
    lib = Library(root)
    tampered = lib.version_path(lib.get_version("sent", 2))
    gone = lib.version_path(lib.get_version("summ"))
    lib.close()
    data = bytearray(tampered.read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    gone.unlink()  # half the library is missing as well as its catalogue
    (root / "prompts" / "notes.txt").write_text("mine")
    lose_catalogue(root)
    report = rebuild_catalogue(root)
    assert any(s.startswith(f"prompts/{tampered.name}: its contents do not match")
               for s in report.skipped)
    assert any(s.startswith("prompts/notes.txt: not named like") for s in report.skipped)
    assert report.versions == 1 and report.datasets == 3
    lib = Library(root)
    assert [v.number for v in lib.list_versions("sent")] == [1]
    # 'summ' lost its only prompt file, which held its name: it comes back by its id.
    summ = lib.get_task_by_id(2)
    assert summ.name == "task-2" and lib.list_versions(summ.name) == []
    assert len(lib.list_datasets(summ.name)) == 2
    # Opening the rebuilt library put the tampered and unknown files aside, for the user.
    report = check_library(lib)
    assert report.ok and not tampered.exists()
    assert report.recovered == sorted([f"recovered/prompts/{tampered.name}",
                                       "recovered/prompts/notes.txt"])
    assert "Put aside 2 file(s)" in caplog.text


def test_rebuild_never_replaces_a_catalogue_with_rows_unless_forced(root, capsys):
    lib = Library(root)
    kept = snapshot(lib)
    lib.close()
    assert main(["--library", str(root), "library", "rebuild"]) == 2
    assert "still lists 2 task(s)" in capsys.readouterr().err
    assert snapshot(Library(root)) == kept
    report = rebuild_catalogue(root, force=True)
    old = next(p for p in root.glob("library.db.replaced-*") if not p.name.endswith("-wal"))
    assert any(old.name in note for note in report.notes)
    with sqlite3.connect(old) as conn:  # the old catalogue, whole, with its own log
        assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 2
    assert sorted(report.tasks) == ["sent", "summ"]


def test_a_failed_rebuild_leaves_the_library_as_it_was(root, monkeypatch):
    lose_catalogue(root)
    files = files_of(root)
    listing = sorted(p.name for p in root.iterdir())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("engine.library.rebuild._insert_datasets", broken)
    with pytest.raises(OSError, match="disk full"):
        rebuild_catalogue(root)
    assert sorted(p.name for p in root.iterdir()) == listing
    assert files_of(root) == files
    with pytest.raises(CatalogueLost):
        Library(root)


def test_rebuild_of_an_empty_folder_says_there_is_nothing(tmp_path):
    with pytest.raises(PromptbankError, match="no prompt or dataset files"):
        rebuild_catalogue(tmp_path / "nothing")


def test_check_compares_each_prompt_files_name_and_header_with_its_row(root):
    lib = Library(root)
    assert check_library(lib).ok
    v1 = lib.get_version("sent", 1)
    # A row that no longer agrees with its file: a length and a model the header does not
    # hold (as a hand-edited or half-restored catalogue would say).
    with lib.transaction():
        lib.db["prompts"].update(v1.id, {"length": 9, "fingerprint": "0" * 32})
    (root / "prompts" / ".t1-v3-abc.safetensors.x1y2.tmp").write_bytes(b"half")
    report = check_library(lib)
    assert not report.ok and report.missing == [] and report.changed == []
    assert report.mismatched == [
        f"{v1.path}: its header says length 4, the catalogue 9; its header says model "
        f"{v1.fingerprint}, the catalogue {'0' * 32}"]
    assert report.temporary == ["prompts/.t1-v3-abc.safetensors.x1y2.tmp"]


def test_rebuild_keeps_two_files_of_one_version_and_says_which_it_renumbered(root):
    from engine.support.fileio import sha256_bytes

    lib = Library(root)
    v2 = lib.get_version("sent", 2)
    task_id = lib.get_task("sent").id
    lib.close()
    # What a kill between a version's file and its row left, then the resumed run's own file.
    orphan = versioned("sent", 9, parent="sent@v1")
    orphan_rel = f"prompts/t{task_id}-v2-{sha256_bytes(orphan)[:12]}.safetensors"
    (root / orphan_rel).write_bytes(orphan)
    os.utime(root / orphan_rel, (2e9, 2e9))
    (root / "prompts" / f".t{task_id}-v3-x.safetensors.abc.tmp").write_bytes(b"half")
    lose_catalogue(root)
    report = rebuild_catalogue(root)
    rebuilt = Library(root)
    versions = {v.number: v.path for v in rebuilt.list_versions("sent")}
    assert versions == {1: versions[1], 2: v2.path, 3: orphan_rel}
    assert any(f"{orphan_rel} were both version 2" in n and "now version 3" in n
               for n in report.notes)
    assert any(".tmp is a temporary file" in n for n in report.notes)
