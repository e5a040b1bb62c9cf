"""Every kind of bad input is refused with a clear message and leaves the library byte-for-byte
as it was (files hashed before and after, with the WAL folded into the database)."""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import zipfile

import pytest

from engine import interop
from engine.errors import PromptbankError
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry
from tests.engine.library_helpers import TINY_GEOMETRY, prompt_bytes, snapshot, write_jsonl

GEOMETRY = ModelGeometry(**TINY_GEOMETRY)
TARGET = interop.ImportTarget(GEOMETRY, 512)
ROWS = [{"input": f"x{i}", "output": "pos" if i % 2 else "neg"} for i in range(8)]


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "lib")
    library.create_task("sent", kind="classify", data=write_jsonl(tmp_path / "s.jsonl", ROWS))
    v1 = library.add_version("sent", prompt_bytes(seed=1))
    library.add_version("sent", prompt_bytes("prefix", seed=2), parent_id=v1.id)
    run = library.create_run("sent", {"steps": 1})
    library.log_metrics(run.id, 1, {"loss": 1.0})
    yield library
    library.close()


@pytest.fixture
def unchanged(lib):
    """Asserts at the end of the test that the library is exactly as it was at the start."""
    before = snapshot(lib)
    yield
    assert snapshot(lib) == before


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"input": "a", "output": "pos"}\n{"input": "b", "output": "neg"\n', "line 2 of bad.jsonl"),
    (b"", "is empty"),
    (b'{"input": "caf\xe9", "output": "pos"}\n', "not UTF-8 text (line 1)"),
    (b'{"input": "a", "output": "maybe"}\n', "not one of the task's labels"),
    (b'{"text": "a"}\n', "match no known format"),
])
def test_bad_dataset_for_existing_task(lib, unchanged, tmp_path, content, expected):
    (tmp_path / "bad.jsonl").write_bytes(content)
    with pytest.raises(PromptbankError) as err:
        lib.add_dataset("sent", tmp_path / "bad.jsonl")
    assert expected in str(err.value)


def test_bad_dataset_for_new_task_creates_no_task(lib, unchanged, tmp_path):
    (tmp_path / "bad.csv").write_text("text,stars\nhi,5\n")
    with pytest.raises(PromptbankError, match="no column 'label'"):
        lib.create_task("new", data=tmp_path / "bad.csv", output_column="label")
    (tmp_path / "bad.jsonl").write_bytes(b'{"input": "a", "output": "b"}\nnot json\n')
    with pytest.raises(PromptbankError, match=r"line 2 of bad\.jsonl"):
        lib.create_task("new", data=tmp_path / "bad.jsonl")
    with pytest.raises(PromptbankError, match="eval fraction"):
        lib.add_dataset("sent", tmp_path / "bad.csv", eval_fraction=1.5)


def test_a_create_retried_after_it_committed_changes_nothing(lib, tmp_path):
    data = write_jsonl(tmp_path / "r.jsonl", ROWS[:4])
    first = lib.create_task("retry", kind="classify", data=data, instruction="Judge it.")
    before = snapshot(lib)
    again = lib.create_task("retry", kind="classify", data=data, instruction="Judge it.")
    assert again == first and snapshot(lib) == before
    assert len(lib.list_datasets("retry")) == 1
    other = write_jsonl(tmp_path / "other.jsonl", ROWS[1:5])
    with pytest.raises(PromptbankError, match="already exists"):  # other data: not a retry
        lib.create_task("retry", kind="classify", data=other, instruction="Judge it.")
    with pytest.raises(PromptbankError, match="already exists"):  # other fields: neither
        lib.create_task("retry", kind="classify", data=data, instruction="Judge it again.")
    assert snapshot(lib) == before


def test_duplicate_task_name(lib, tmp_path):
    lib.create_task("other")
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="already exists"):
        lib.create_task("sent", data=write_jsonl(tmp_path / "o.jsonl", ROWS[:3]))
    with pytest.raises(PromptbankError, match="already exists"):
        lib.rename_task("other", "sent")
    assert snapshot(lib) == before


def test_same_dataset_twice_is_the_same_snapshot(lib, unchanged, tmp_path):
    (first,) = lib.list_datasets("sent")
    assert lib.add_dataset("sent", tmp_path / "s.jsonl") == first


def test_prompt_for_another_hidden_size(lib, unchanged, tmp_path):
    bigger = ModelGeometry("b" * 32, 64, 2, 2, 16)
    path = tmp_path / "big.safetensors"
    path.write_bytes(prompt_bytes(geometry=bigger))
    with pytest.raises(PromptbankError, match="hidden size 64"):
        interop.import_safetensors(lib, path, TARGET, task="sent", force=True)


def test_tampered_and_truncated_prompt_files(lib, tmp_path):
    version = lib.get_version("sent", 1)
    path = lib.version_path(version)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="does not match its checksum"):
        interop.export_version(lib, "sent", "safetensors", tmp_path / "x.safetensors", version=1)
    with pytest.raises(PromptbankError, match="does not match its checksum"):
        interop.export_pack(lib, ["sent"], tmp_path / "x.pbpack")
    assert snapshot(lib) == before
    assert not (tmp_path / "x.pbpack").exists()
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(PromptbankError, match=r"damaged|truncated"):
        interop.import_safetensors(lib, truncated, TARGET)
    with pytest.raises(PromptbankError):
        lib.add_version("sent", good[:40])
    assert snapshot(lib) == before


def make_zip(path, members: dict[str, bytes], *, links=()):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


@pytest.fixture
def pack(lib, tmp_path):
    return interop.export_pack(lib, ["sent"], tmp_path / "good.pbpack")


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_pack_with_escaping_path(lib, unchanged, pack, tmp_path):
    members = members_of(pack)
    members["../evil.txt"] = b"x"
    with pytest.raises(PromptbankError, match="escapes"):
        interop.import_pack(lib, make_zip(tmp_path / "e.pbpack", members), TARGET)
    members.pop("../evil.txt")
    members["/abs/evil.txt"] = b"x"
    with pytest.raises(PromptbankError, match="escapes"):
        interop.import_pack(lib, make_zip(tmp_path / "a.pbpack", members), TARGET)
    assert not (tmp_path / "evil.txt").exists()


def test_pack_with_symlink(lib, unchanged, pack, tmp_path):
    path = make_zip(tmp_path / "l.pbpack", members_of(pack), links=["tasks/link"])
    with pytest.raises(PromptbankError, match="symbolic link"):
        interop.import_pack(lib, path, TARGET)


def test_pack_with_oversized_member(lib, unchanged, pack, monkeypatch):
    monkeypatch.setattr(interop.archive, "MAX_MEMBER_BYTES", 100)
    with pytest.raises(PromptbankError, match="oversized"):
        interop.import_pack(lib, pack, TARGET)


def test_pack_with_bad_checksum_or_missing_file(lib, unchanged, pack, tmp_path):
    members = members_of(pack)
    name = next(n for n in members if n.endswith("v1.safetensors"))
    members[name] = members[name][:-1] + b"\x00"
    with pytest.raises(PromptbankError, match="does not match its checksum"):
        interop.import_pack(lib, make_zip(tmp_path / "c.pbpack", members), TARGET)
    members.pop(name)
    with pytest.raises(PromptbankError, match="lacks the file"):
        interop.import_pack(lib, make_zip(tmp_path / "m.pbpack", members), TARGET)
    bad = {"manifest.json": b"{not json"}
    with pytest.raises(PromptbankError, match="not valid JSON"):
        interop.import_pack(lib, make_zip(tmp_path / "j.pbpack", bad), TARGET)
    (tmp_path / "n.pbpack").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PromptbankError, match="not a valid zip"):
        interop.import_pack(lib, tmp_path / "n.pbpack", TARGET)


def test_pack_for_another_model(lib, unchanged, tmp_path):
    other_lib = Library(tmp_path / "other")
    other_lib.create_task("theirs")
    other_lib.add_version("theirs", prompt_bytes(geometry=ModelGeometry("c" * 32, 32, 2, 2, 8)))
    pack = interop.export_pack(other_lib, ["theirs"], tmp_path / "t.pbpack")
    with pytest.raises(PromptbankError, match="--force"):
        interop.import_pack(lib, pack, TARGET)


def full_disk_after(monkeypatch, allowed: int) -> None:
    """Make the ``allowed``+1-th atomic rename fail as a full disk would."""
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] > allowed:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_disk_full_during_pack_import(lib, tmp_path, monkeypatch):
    source = Library(tmp_path / "source")
    for name in ("a", "b"):
        source.create_task(name)
        source.add_version(name, prompt_bytes(seed=5, task=name))
        source.add_version(name, prompt_bytes(seed=6, task=name))
    pack = interop.export_pack(source, ["a", "b"], tmp_path / "ab.pbpack")
    before = snapshot(lib)
    full_disk_after(monkeypatch, 3)  # three prompt files land, the fourth does not fit
    with pytest.raises(PromptbankError, match="No space left"):
        interop.import_pack(lib, pack, TARGET)
    monkeypatch.undo()
    assert snapshot(lib) == before
    report = interop.import_pack(lib, pack, TARGET)  # and it works once there is room
    assert report.added == ["a (2 versions)", "b (2 versions)"]


def test_disk_full_during_dataset_import(lib, unchanged, tmp_path, monkeypatch):
    train = write_jsonl(tmp_path / "t.jsonl", ROWS[:5])
    held = write_jsonl(tmp_path / "e.jsonl", ROWS[5:])
    full_disk_after(monkeypatch, 1)
    with pytest.raises(PromptbankError, match="No space left"):
        lib.create_task("new", kind="classify", data=train, eval_path=held)


def test_kobold_zip_without_tensor_and_with_pickle(lib, unchanged, tmp_path):
    with pytest.raises(PromptbankError, match=r"no tensor\.npy"):
        interop.import_kobold(lib, make_zip(tmp_path / "k.zip", {"meta.json": b"{}"}), TARGET)
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = make_zip(tmp_path / "p.zip", {"tensor.npy": buffer.getvalue(),
                                         "meta.json": json.dumps({"name": "x"}).encode()})
    with pytest.raises(PromptbankError, match="does not hold numbers"):
        interop.import_kobold(lib, path, TARGET)


def test_kobold_header_claiming_a_huge_shape_is_refused_before_allocating(lib, unchanged,
                                                                          tmp_path):
    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000_000, 576)})
    npy = header.getvalue() + np.ones((3, 4), np.float32).tobytes()
    path = make_zip(tmp_path / "huge.zip", {"tensor.npy": npy})
    with pytest.raises(PromptbankError, match="declares a 100000000×576 array of "
                       "230,400,000,000 bytes but holds 48"):
        interop.import_kobold(lib, path, TARGET)


def test_inferred_labels_that_differ_only_in_case_are_refused(lib, tmp_path):
    rows = [{"input": "a", "output": "positive"}, {"input": "b", "output": "Positive"},
            {"input": "c", "output": "negative"}]
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="differ only in case") as err:
        lib.create_task("cased", kind="classify", data=write_jsonl(tmp_path / "c.jsonl", rows))
    assert "'Positive', 'positive'" in str(err.value) and "--labels" in err.value.hint
    assert snapshot(lib) == before
    given = lib.create_task("cased", kind="classify", labels=["positive", "Positive", "negative"],
                            data=tmp_path / "c.jsonl")  # given on purpose: three classes
    assert given.labels == ["positive", "Positive", "negative"]


def test_a_name_that_differs_only_in_case_is_kept_with_a_warning(lib, caplog):
    lib.create_task("Sent")
    assert "'Sent' differs from 'sent' only in case" in caplog.text
    caplog.clear()
    lib.create_task("other")
    lib.rename_task("other", "SENT")
    assert "'SENT' differs from" in caplog.text
    assert {t.name for t in lib.list_tasks()} >= {"sent", "Sent", "SENT"}
