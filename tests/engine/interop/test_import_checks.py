"""Import brings only what the loaded model can serve: 1 <= length, length plus room for data
within the context, an archive of bounded total size, and for PEFT adapters the layer count
and base model their config names (another name with --force)."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from engine import interop
from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.conftest import TEST_DEVICE
from tests.engine.library_helpers import TINY_GEOMETRY, prompt_bytes, snapshot

GEOMETRY = ModelGeometry(**TINY_GEOMETRY)
TARGET = interop.ImportTarget(GEOMETRY, 512, ("/models/tiny-llama",))


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "lib")
    library.create_task("t")
    yield library
    library.close()


def zero_token_file() -> bytes:
    meta = SoftPrompt("prompt", torch.zeros(1, 32), GEOMETRY, task="t").metadata()
    meta.update(length="0", shape="[0, 32]")
    return st_save({"prompt": torch.zeros(0, 32)}, metadata=meta)


def test_a_prompt_of_no_tokens_is_refused(lib, tmp_path):
    before = snapshot(lib)
    path = tmp_path / "empty.safetensors"
    path.write_bytes(zero_token_file())
    with pytest.raises(PromptbankError, match="has no virtual tokens"):
        interop.import_safetensors(lib, path, TARGET)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((0, 32), dtype=np.float32))
    kobold = tmp_path / "empty.zip"
    with zipfile.ZipFile(kobold, "w") as zf:
        zf.writestr("tensor.npy", buffer.getvalue())
    with pytest.raises(PromptbankError, match="has no virtual tokens"):
        interop.import_kobold(lib, kobold, TARGET)
    assert snapshot(lib) == before


def test_a_prompt_must_leave_room_for_data_in_the_context(lib, tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes(prompt_bytes(length=257))
    before = snapshot(lib)
    with pytest.raises(PromptbankError) as info:
        interop.import_safetensors(lib, path, TARGET)
    assert str(info.value).startswith(f"{path} has 257 virtual tokens, but the model's context "
                                      "of 512 tokens must keep 256 for the data, so at most 256 "
                                      "fit.")
    assert snapshot(lib) == before
    path.write_bytes(prompt_bytes(length=256))
    assert interop.import_safetensors(lib, path, TARGET).added == ["t v1"]


def test_a_pack_of_prompts_too_long_for_the_model_writes_nothing(lib, tmp_path):
    source = Library(tmp_path / "source")
    source.create_task("long")
    source.add_version("long", prompt_bytes(length=4, seed=1))
    source.add_version("long", prompt_bytes(length=1000, seed=2))
    pack = interop.export_pack(source, ["long"], tmp_path / "long.pbpack")
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="has 1,000 virtual tokens"):
        interop.import_pack(lib, pack, TARGET)
    assert snapshot(lib) == before


def test_an_archive_too_large_in_all_is_refused_before_reading(lib, tmp_path, monkeypatch):
    source = Library(tmp_path / "source")
    for name in ("a", "b", "c"):
        source.create_task(name)
        source.add_version(name, prompt_bytes(seed=len(name), task=name))
    pack = interop.export_pack(source, ["a", "b", "c"], tmp_path / "abc.pbpack")
    total = sum(i.file_size for i in zipfile.ZipFile(pack).infolist())
    monkeypatch.setattr(interop.archive, "MAX_ARCHIVE_BYTES", total - 1)
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="MiB an import may hold; it was refused"):
        interop.import_pack(lib, pack, TARGET)
    assert snapshot(lib) == before
    monkeypatch.setattr(interop.archive, "MAX_ARCHIVE_BYTES", total)
    assert len(interop.import_pack(lib, pack, TARGET).added) == 3


def peft_folder(lib: Library, tmp_path, **config) -> object:
    """A PEFT prompt-tuning adapter for the tiny geometry whose config has ``config``."""
    lib.add_version("t", prompt_bytes(seed=7))
    folder = interop.export_version(lib, "t", "peft", tmp_path / "adapter")
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return folder


def test_peft_adapter_for_another_named_model_needs_force(lib, tmp_path):
    folder = peft_folder(lib, tmp_path, base_model_name_or_path="meta-llama/Llama-2-7b-hf")
    before = snapshot(lib)
    with pytest.raises(PromptbankError) as info:
        interop.import_peft(lib, folder, TARGET, task="llama")
    assert str(info.value).startswith(f"{folder} is a PEFT adapter for meta-llama/Llama-2-7b-hf;"
                                      " the loaded model is /models/tiny-llama. Load that model, "
                                      "or use --force")
    assert snapshot(lib) == before
    report = interop.import_peft(lib, folder, TARGET, task="llama", force=True)
    assert report.added == ["llama v1"] and "imported with --force" in report.notes[0]


def test_peft_adapter_for_the_loaded_model_by_name(lib, tmp_path):
    folder = peft_folder(lib, tmp_path, base_model_name_or_path="someone/tiny-llama")
    report = interop.import_peft(lib, folder, TARGET, task="same")
    assert report.added == ["same v1"] and "names someone/tiny-llama" in report.notes[0]


def test_peft_adapter_for_another_layer_count_is_refused_even_with_force(lib, tmp_path):
    folder = peft_folder(lib, tmp_path, num_layers=32,
                         base_model_name_or_path="/models/tiny-llama")
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="for a model of 32 layers; the loaded model "
                                              r"\(/models/tiny-llama\) has 2"):
        interop.import_peft(lib, folder, TARGET, force=True)
    assert snapshot(lib) == before


def test_cli_import_of_a_peft_adapter_for_another_model(tmp_path, tiny_model_dir, capsys):
    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    host_geometry = ModelGeometry(**{**TINY_GEOMETRY, "fingerprint": "0" * 32})
    tensor = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    lib.add_version("t", SoftPrompt("prompt", tensor, host_geometry, task="t").to_bytes())
    folder = interop.export_version(lib, "t", "peft", tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-2-7b-hf"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    argv = ["--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir), "--device",
            TEST_DEVICE, "import", str(folder), "--task", "theirs"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"promptbank: {folder} is a PEFT adapter for meta-llama/Llama-2-7b-hf")
    assert main([*argv, "--force"]) == 0
    assert "note: The adapter names meta-llama/Llama-2-7b-hf" in capsys.readouterr().out


def test_a_cli_import_whose_model_record_fails_changes_nothing_and_retries_once(
        tmp_path, tiny_model_dir, tiny_host, capsys, monkeypatch):
    from engine.library.catalogue import catalogue_error
    from engine.library.library import Library as LibraryClass

    lib = Library(tmp_path / "lib")
    lib.create_task("t")
    geometry = ModelGeometry.of(tiny_host)
    tensor = torch.randn(4, geometry.hidden_size, generator=torch.Generator().manual_seed(1))
    lib.add_version("t", SoftPrompt("prompt", tensor, geometry, task="t").to_bytes())
    pack = interop.export_version(lib, "t", "pack", tmp_path / "t.pbpack")
    lib.rename_task("t", "older")
    before = snapshot(lib)
    lib.close()
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    sqlite_full.sqlite_errorcode = 13  # SQLITE_FULL, as SQLite reports a full disk
    full = catalogue_error(sqlite_full, tmp_path / "lib" / "library.db")

    def disk_full(self, info):
        raise full

    argv = ["--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir), "--device",
            TEST_DEVICE, "import", str(pack)]
    with monkeypatch.context() as patch:
        patch.setattr(LibraryClass, "record_model", disk_full)
        assert main(argv) == 2
    assert "Nothing was changed" in capsys.readouterr().err
    assert snapshot(Library(tmp_path / "lib")) == before  # and truly nothing was
    assert main(argv) == 0
    assert main(argv) == 0  # a second success adds no copy
    names = sorted(t.name for t in Library(tmp_path / "lib").list_tasks())
    assert names == ["older", "t"]
