"""Random bytes and random JSONL fed to every importer: a clean import or a PromptbankError,
and after an error the library is exactly as it was."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import interop
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.readers import parse_examples
from engine.prompts.soft_prompt import ModelGeometry
from tests.engine.library_helpers import TINY_GEOMETRY, prompt_bytes, snapshot

GEOMETRY = ModelGeometry(**TINY_GEOMETRY)
TARGET = interop.ImportTarget(GEOMETRY, 512)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
KEYS = st.sampled_from(["input", "output", "prompt", "completion", "instruction", "messages",
                        "role", "content", "x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8)
RECORDS = st.dictionaries(KEYS, JSON_VALUES, max_size=4)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    library = Library(tmp_path_factory.mktemp("fuzz") / "lib")
    library.create_task("gen")
    library.add_version("gen", prompt_bytes())
    yield library
    library.close()


def attempt(lib: Library, action) -> None:
    before = snapshot(lib)
    try:
        action()
    except PromptbankError as exc:
        assert str(exc).strip()
        assert snapshot(lib) == before


@FUZZ
@given(data=st.binary(max_size=300), name=st.sampled_from(["d.jsonl", "d.csv", "d.tsv", "d"]))
def test_random_bytes_as_dataset(lib, data, name):
    attempt(lib, lambda: lib.add_dataset_bytes("gen", name, data))


@FUZZ
@given(records=st.lists(RECORDS, min_size=1, max_size=5),
       junk=st.lists(st.sampled_from(["", "{", "[]", "null", "\x00"]), max_size=2))
def test_random_jsonl_as_dataset(lib, records, junk):
    lines = [json.dumps(r) for r in records] + junk
    data = "\n".join(lines).encode()
    try:
        result = parse_examples(data, "r.jsonl")
        assert result.examples and all(e.output.strip() for e in result.examples)
    except PromptbankError:
        pass
    attempt(lib, lambda: lib.add_dataset_bytes("gen", "r.jsonl", data))


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".pbpack", ".zip",
                                                             ".safetensors", ".bin"]))
def test_random_bytes_as_prompt_files(lib, tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("in") / f"x{suffix}"
    path.write_bytes(data)
    attempt(lib, lambda: interop.import_any(lib, path, TARGET))


@pytest.fixture(scope="module")
def pack_bytes(lib, tmp_path_factory) -> bytes:
    path = interop.export_pack(lib, ["gen"], tmp_path_factory.mktemp("p") / "g.pbpack")
    return path.read_bytes()


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1,
                      max_size=4))
def test_damaged_packs(lib, pack_bytes, tmp_path_factory, flips):
    data = bytearray(pack_bytes)
    for where, mask in flips:
        data[where % len(data)] ^= mask
    path = tmp_path_factory.mktemp("d") / "g.pbpack"
    path.write_bytes(bytes(data))
    attempt(lib, lambda: interop.import_pack(lib, path, TARGET))


def test_a_pack_claiming_a_zip_version_python_cannot_read_is_refused(lib, pack_bytes,
                                                                     tmp_path_factory):
    # Found by the fuzz test above in CI: zipfile refuses such a directory entry with
    # NotImplementedError, not BadZipFile.
    data = bytearray(pack_bytes)
    entry = data.index(b"PK\x01\x02")  # the central directory's first entry
    data[entry + 6:entry + 8] = (84).to_bytes(2, "little")  # "needs zip version 8.4"
    path = tmp_path_factory.mktemp("v") / "future.pbpack"
    path.write_bytes(bytes(data))
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="not a valid zip archive"):
        interop.import_pack(lib, path, TARGET)
    assert snapshot(lib) == before


@FUZZ
@given(manifest=st.dictionaries(st.sampled_from(["format", "format_version", "tasks"]),
                                JSON_VALUES, max_size=3),
       tasks=st.lists(st.dictionaries(st.sampled_from(["name", "kind", "labels", "versions",
                                                       "eval", "active"]),
                                      JSON_VALUES, max_size=6), max_size=2))
def test_random_manifests(lib, tmp_path_factory, manifest, tasks):
    manifest = {"format": "promptbank-pack", "format_version": 1, **manifest}
    if tasks:
        manifest["tasks"] = tasks
    path: Path = tmp_path_factory.mktemp("m") / "m.pbpack"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
    attempt(lib, lambda: interop.import_pack(lib, path, TARGET))
