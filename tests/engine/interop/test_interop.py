"""Interop: PEFT adapters (same logits as PEFT both ways), KoboldAI zips, prompt packs."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from engine.errors import PromptbankError
from engine.interop import (
    ImportTarget,
    export_kobold,
    export_pack,
    export_peft,
    export_version,
    import_any,
    import_kobold,
    import_pack,
    import_peft,
    load_version,
)
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape
from tests.engine.library_helpers import snapshot, write_jsonl


@pytest.fixture
def geometry(tiny_host) -> ModelGeometry:
    return ModelGeometry.of(tiny_host)


@pytest.fixture
def target(tiny_host) -> ImportTarget:
    return ImportTarget.of(tiny_host)


@pytest.fixture
def lib(tmp_path):
    library = Library(tmp_path / "lib")
    yield library
    library.close()


@pytest.fixture
def fresh_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def make_prompt(geometry, method, length=5, seed=0, task="t") -> SoftPrompt:
    gen = torch.Generator().manual_seed(seed)
    tensor = torch.randn(prompt_shape(method, length, geometry), generator=gen) * 0.5
    return SoftPrompt(method, tensor, geometry, task=task, init="random")


def our_logits(host, method, tensor, ids):
    from engine.forward.decoder import logits
    from engine.forward.past import gather
    from engine.forward.rows import place
    from engine.forward.state import data_hidden
    from engine.methods import get_method

    with torch.no_grad():
        packed = get_method(method).keys_values(host, tensor)
        past, valid, lengths = gather(host, [packed], [0] * ids.shape[0])
        placed = place(ids.tolist(), lengths.tolist(), pad_id=0)
        return logits(host, data_hidden(host, past, valid, placed.to(host.device))).cpu()


def peft_logits(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return logits[:, -ids.shape[1]:]


def token_ids(host):
    return host.tokenizer("the movie was great", return_tensors="pt")["input_ids"]


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_peft_export_gives_our_logits(method, lib, tiny_host, geometry, fresh_model, tmp_path):
    from peft import PeftModel

    lib.create_task("t")
    prompt = make_prompt(geometry, method)
    version = lib.add_version("t", prompt.to_bytes())
    folder = export_peft(lib, version, tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == {"prompt": "PROMPT_TUNING", "prefix": "PREFIX_TUNING"}[method]
    peft_model = PeftModel.from_pretrained(fresh_model, folder).eval()
    ids = token_ids(tiny_host)
    ours = our_logits(tiny_host, method, prompt.tensor, ids)
    theirs = peft_logits(peft_model, ids)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_peft_import_gives_peft_logits(method, lib, tiny_host, target, fresh_model, tmp_path):
    from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model

    n = 3
    if method == "prompt":
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n)
    else:
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n)
    peft_model = get_peft_model(fresh_model, config)
    with torch.no_grad():
        weight = peft_model.prompt_encoder["default"].embedding.weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)) * 0.5)
    peft_model.save_pretrained(tmp_path / "their-adapter")
    peft_model.eval()
    report = import_peft(lib, tmp_path / "their-adapter", target, task="theirs")
    assert report.added == ["theirs v1"]
    prompt = load_version(lib, lib.get_version("theirs"))
    assert prompt.method == method and prompt.length == n
    ids = token_ids(tiny_host)
    ours = our_logits(tiny_host, method, prompt.tensor, ids)
    theirs = peft_logits(peft_model, ids)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_peft_import_refuses_other_sizes_and_kinds(lib, geometry, target, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING"}))
    save_file({"prompt_embeddings": torch.zeros(4, 64)}, str(folder / "adapter_model.safetensors"))
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="hidden size 32"):
        import_peft(lib, folder, target)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(PromptbankError, match="LORA adapter"):
        import_peft(lib, folder, target)
    assert snapshot(lib) == before


def test_kobold_round_trip_and_prefix_refusal(lib, geometry, target, tmp_path):
    lib.create_task("k")
    prompt = make_prompt(geometry, "prompt", seed=4)
    version = lib.add_version("k", prompt.to_bytes())
    out = export_kobold(lib, version, tmp_path / "k.zip", task_name="k")
    with zipfile.ZipFile(out) as zf:
        assert set(zf.namelist()) == {"tensor.npy", "meta.json"}
        assert json.loads(zf.read("meta.json"))["name"] == "k"
    report = import_kobold(lib, out, target, task="k2")
    assert report.added == ["k2 v1"]
    assert torch.equal(load_version(lib, lib.get_version("k2")).tensor, prompt.tensor)
    again = import_kobold(lib, out, target, task="k2")
    assert again.skipped and not again.added  # the same prompt is not added twice
    lib.create_task("p")
    prefix = lib.add_version("p", make_prompt(geometry, "prefix").to_bytes())
    with pytest.raises(PromptbankError, match="prefix"):
        export_kobold(lib, prefix, tmp_path / "p.zip")


def test_kobold_of_another_hidden_size_leaves_library_unchanged(lib, geometry, target, tmp_path):
    path = tmp_path / "other.zip"
    buffer = __import__("io").BytesIO()
    np.save(buffer, np.zeros((4, 48), dtype=np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tensor.npy", buffer.getvalue())
        zf.writestr("meta.json", "{}")
    before = snapshot(lib)
    with pytest.raises(PromptbankError, match="hidden size 32"):
        import_kobold(lib, path, target)
    assert snapshot(lib) == before


def build_library(lib, geometry, tmp_path):
    rows = [{"input": f"x{i}", "output": "pos" if i % 2 else "neg"} for i in range(10)]
    lib.create_task("sent", kind="classify", data=write_jsonl(tmp_path / "s.jsonl", rows),
                    instruction="Classify.")
    v1 = lib.add_version("sent", make_prompt(geometry, "prompt", seed=1).to_bytes(),
                         metrics={"accuracy": 0.7})
    lib.add_version("sent", make_prompt(geometry, "prefix", seed=2).to_bytes(), parent_id=v1.id)
    lib.set_active("sent", 2)
    lib.create_task("gen")
    lib.add_version("gen", make_prompt(geometry, "prompt", seed=3).to_bytes())


def test_pack_round_trip_rename_and_skip(lib, geometry, target, tmp_path):
    build_library(lib, geometry, tmp_path)
    pack = export_pack(lib, ["sent", "gen"], tmp_path / "share.pbpack")
    other = Library(tmp_path / "colleague")
    report = import_pack(other, pack, target)
    assert report.added == ["sent (2 versions)", "gen (1 version)"]
    versions = other.list_versions("sent")
    assert [v.number for v in versions] == [1, 2] and versions[1].parent_id == versions[0].id
    assert other.get_version("sent").number == 2 and versions[0].metrics == {"accuracy": 0.7}
    assert other.get_task("sent").labels == ["neg", "pos"]
    assert len(other.examples("sent", "eval")) == len(lib.examples("sent", "eval"))
    assert import_pack(other, pack, target).skipped == ["sent: already in the library",
                                                          "gen: already in the library"]
    other.add_version("gen", make_prompt(geometry, "prompt", seed=9).to_bytes())
    other.delete_task("sent")
    other.create_task("sent")
    report = import_pack(other, pack, target)
    assert report.renamed == ["sent -> sent (2)"]
    assert report.skipped == ["gen: already in the library"]
    other.close()


def test_pack_for_another_model_needs_force(lib, geometry, tmp_path):
    build_library(lib, geometry, tmp_path)
    pack = export_version(lib, "gen", "pack", tmp_path / "g.pbpack")
    other = Library(tmp_path / "colleague")
    same_size = ModelGeometry("0" * 32, geometry.hidden_size, geometry.layers, geometry.kv_heads,
                              geometry.head_dim)
    before = snapshot(other)
    with pytest.raises(PromptbankError, match="--force"):
        import_pack(other, pack, ImportTarget(same_size, 512))
    assert snapshot(other) == before
    report = import_pack(other, pack, ImportTarget(same_size, 512), force=True)
    assert report.added == ["gen (1 version)"] and report.notes
    bigger = ModelGeometry("1" * 32, 64, 2, 2, 16)
    with pytest.raises(PromptbankError, match="hidden size 32"):
        import_pack(Library(tmp_path / "third"), pack, ImportTarget(bigger, 512), force=True)
    other.close()


def test_exports_of_every_format_and_import_any(lib, geometry, target, tmp_path):
    build_library(lib, geometry, tmp_path)
    for fmt, out in [("safetensors", tmp_path / "g.safetensors"), ("kobold", tmp_path / "g.zip"),
                     ("peft", tmp_path / "g-peft"), ("pack", tmp_path / "g.pbpack")]:
        export_version(lib, "gen", fmt, out)
        other = Library(tmp_path / f"lib-{fmt}")
        detected, report = import_any(other, out, target, task="gen")
        assert detected == fmt and report.added, fmt
        assert torch.equal(load_version(other, other.get_version("gen")).tensor,
                           load_version(lib, lib.get_version("gen")).tensor)
        other.close()
    with pytest.raises(PromptbankError, match="Unknown export format"):
        export_version(lib, "gen", "onnx", tmp_path / "x")
