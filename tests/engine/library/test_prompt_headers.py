"""Malformed prompt headers get one-line errors wherever they are read (SoftPrompt, the
catalogue, import, rebuild, the CLI); the header reader stands random and adversarial bytes."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from engine import interop
from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.headers import read_header_metadata
from engine.library.rebuild import rebuild_catalogue
from engine.library.store import prompt_file
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.support.fileio import sha256_bytes
from tests.conftest import TEST_DEVICE
from tests.engine.library_helpers import TINY_GEOMETRY, snapshot

GEOMETRY = ModelGeometry(**TINY_GEOMETRY)
TARGET = interop.ImportTarget(GEOMETRY, 512)


def with_meta(**changes: str) -> bytes:
    """A prompt file whose header metadata has ``changes`` (a value of None drops the key)."""
    prompt = SoftPrompt("prompt", torch.zeros(4, 32), GEOMETRY, task="t")
    meta = {**prompt.metadata(), **changes}
    return st_save({"prompt": prompt.tensor}, metadata={k: v for k, v in meta.items()
                                                       if v is not None})


def raw_header(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


DEEP = raw_header(b'{"__metadata__": {"format": "promptbank"}, "x": '
                  + b"[" * 200_000 + b"]" * 200_000 + b"}")

BAD_FILES = [
    (DEEP, "damaged header (nested deeper than 8 levels)"),
    (with_meta(format_version="one"), "'format_version' is 'one', not a whole number"),
    (with_meta(hidden_size="32.0"), "'hidden_size' is '32.0', not a whole number"),
    (with_meta(layers="9" * 40), "'layers' is '999999999999999999999999…', not a whole number"),
    (with_meta(kv_heads=None), "it lacks 'kv_heads'"),
    (with_meta(model_fingerprint=""), "names no model"),
    (raw_header(b'{"__metadata__": {"a": 1' + b"0" * 5000 + b"}}"), "damaged header"),
]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize("data, words", BAD_FILES)
def test_soft_prompt_and_import_refuse_a_malformed_header_in_one_line(data, words, tmp_path):
    with pytest.raises(PromptbankError) as info:
        SoftPrompt.from_bytes(data, source="x.safetensors")
    assert words in one_line(info.value) and one_line(info.value).startswith("x.safetensors")
    lib = Library(tmp_path / "lib")
    before = snapshot(lib)
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(PromptbankError, match=r"x\.safetensors"):
        interop.import_safetensors(lib, path, TARGET)
    assert snapshot(lib) == before


@pytest.mark.parametrize("data", [DEEP, with_meta(length="four"), with_meta(hidden_size="")])
def test_the_catalogue_refuses_a_malformed_header_in_one_line(data, tmp_path):
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    with pytest.raises(PromptbankError) as info:
        lib.add_version("t", data)
    assert "damaged header" in one_line(info.value)


def test_rebuild_skips_a_file_with_a_malformed_header(tmp_path):
    root = tmp_path / "lib"
    Library(root).close()
    (root / "library.db").unlink()
    good = with_meta()
    bad = with_meta(format_version="one", length="x")
    for number, data in ((1, good), (2, bad)):
        (root / prompt_file(1, number, sha256_bytes(data))).write_bytes(data)
    report = rebuild_catalogue(root)
    assert report.versions == 1
    (skipped,) = report.skipped
    assert skipped.startswith("prompts/t1-v2-") and "'length' is 'x', not a whole number" in skipped


def test_cli_import_of_a_malformed_header_is_one_line(tmp_path, tiny_model_dir, capsys):
    path = tmp_path / "x.safetensors"
    path.write_bytes(DEEP)
    code = main(["--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir), "--device",
                 TEST_DEVICE, "import", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("promptbank: ") and "nested deeper" in err[-1]


JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
               | st.floats() | st.text(max_size=6))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=10)


def survives(data: bytes) -> None:
    """The header reader and SoftPrompt either succeed or raise one-line PromptbankErrors."""
    for read in (lambda: read_header_metadata(data, source="f"),
                 lambda: SoftPrompt.from_bytes(data, source="f")):
        try:
            read()
        except PromptbankError as exc:
            one_line(exc)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_as_a_prompt_file(data):
    survives(data)
    survives(raw_header(data))


@settings(max_examples=150, deadline=None)
@given(meta=st.dictionaries(st.sampled_from(["format", "format_version", "method", "length",
                                             "hidden_size", "layers", "kv_heads", "head_dim",
                                             "model_fingerprint", "x"]), JSON_VALUES),
       depth=st.integers(min_value=0, max_value=3000), wrap=st.sampled_from(["[", '{"a":']))
def test_adversarial_headers(meta, depth, wrap):
    closing = "]" if wrap == "[" else "}"
    header = json.dumps({"__metadata__": meta, "prompt": {
        "dtype": "F32", "shape": [4, 32], "data_offsets": [0, 512]}})
    survives(raw_header(header.encode(), bytes(512)))
    nested = '{"__metadata__": ' + wrap * depth + json.dumps(meta) + closing * depth + "}"
    survives(raw_header(nested.encode(), bytes(512)))
