"""GGUF conversion: a converted file computes what the model it came from computes, in 16 bits
where the file was quantised, framed as the file says, checked at first load, cached, and
never left half-written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from engine.errors import PromptbankError
from engine.model import convert as gguf
from engine.model.host import ModelHost
from tests.gguf_writer import build_hf, write_gguf

TEXT = "the movie was great and the acting was wonderful a terrible boring film"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private cache, so each test converts from scratch."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PROMPTBANK_CACHE", str(folder))
    return folder


@pytest.fixture
def any_perplexity(monkeypatch) -> None:
    """Random tiny models predict no English; the conversion check would refuse them."""
    monkeypatch.setattr(gguf, "MAX_PERPLEXITY", math.inf)


def _quantised_reference(folder: Path):
    """The Hugging Face model with its Q8_0-able matrices rounded through Q8_0."""
    import gguf as gguf_py
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    kind = gguf_py.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2 and param.shape[1] % 32 == 0 and "lm_head" not in name:
                data = param.numpy()
                param.copy_(torch.from_numpy(gguf_py.quants.dequantize(
                    gguf_py.quants.quantize(data, kind), kind).reshape(data.shape)))
    return model


@pytest.mark.parametrize("quant", ["F32", "Q8_0"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_a_converted_gguf_computes_what_its_model_computes(tmp_path, cache, any_perplexity,
                                                          arch, quant):
    source = build_hf(tmp_path / "hf", arch)
    path = write_gguf(source, tmp_path / f"{arch}.gguf", arch, quant=quant)
    host = ModelHost(str(path), device="cpu", dtype="float32")
    if quant == "F32":
        from transformers import AutoModelForCausalLM
        reference = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    else:
        reference = _quantised_reference(source)
    ids = torch.tensor([list(range(5, 40))])
    with torch.no_grad():
        ours = host.model(input_ids=ids).logits
        theirs = reference(input_ids=ids).logits
    # float32 files convert exactly; Q8_0 values are kept in float16 (11 significant bits).
    tolerance = 1e-5 if quant == "F32" else 2e-3 * float(theirs.abs().max())
    assert (ours - theirs).abs().max() <= tolerance
    stored = {"F32": "F32", "Q8_0": "F16"}[quant]
    with safe_open(str(host.folder / "model.safetensors"), "pt") as fh:
        names = list(fh.keys())
        matrices = [fh.get_slice(k).get_dtype() for k in names if "proj" in k]
    assert set(matrices) == {stored}
    assert host.conversion.dtype == {"F32": "float32", "Q8_0": "float16"}[quant]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_settings_read_without_the_vocabulary_equal_transformers_own(tmp_path, arch):
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = write_gguf(build_hf(tmp_path / "hf", arch), tmp_path / "m.gguf", arch)
    fast, metadata = gguf._config(path)
    assert metadata["general.architecture"] == arch
    assert fast == load_gguf_checkpoint(str(path), return_tensors=False)["config"]


def test_a_base_model_keeps_its_bos_and_is_framed_as_plain_text(tmp_path, cache,
                                                                 any_perplexity):
    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "base.gguf", "llama",
                      chat_template=False, add_bos=True)
    host = ModelHost(str(path), device="cpu")
    assert host.template == "plain" and host.info().template == "plain"
    ids, _ = host.chat.context_ids("the movie was great")
    assert ids[0] == host.tokenizer.bos_token_id
    assert ids == host.tokenizer("the movie was great\n")["input_ids"]


def test_an_instruction_tuned_file_without_a_template_gets_its_familys(tmp_path, cache,
                                                                       any_perplexity):
    path = write_gguf(build_hf(tmp_path / "hf", "qwen2"), tmp_path / "it.gguf", "qwen2",
                      chat_template=False, finetune="Instruct")
    host = ModelHost(str(path), device="cpu")
    assert host.template == "family:chatml"
    text = host.chat.context_text("hello")
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_a_files_own_template_is_kept(tmp_path, cache, any_perplexity):
    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "t.gguf", "llama")
    host = ModelHost(str(path), device="cpu")
    assert host.template == "file"
    assert host.chat.context_text("hi").startswith("<|im_start|>user\nhi")


def test_the_second_load_reads_the_cached_conversion(tmp_path, cache, any_perplexity):
    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "m.gguf", "llama")
    first: list[str] = []
    again: list[str] = []
    one = ModelHost(str(path), device="cpu", progress=lambda s, f: first.append(s))
    two = ModelHost(str(path), device="cpu", progress=lambda s, f: again.append(s))
    assert any("De-quantising" in s for s in first)
    assert not any("De-quantising" in s or "Checking" in s for s in again)
    assert one.folder == two.folder and one.fingerprint == two.fingerprint
    assert gguf.ConversionRecord.load(two.folder).check["passed"]


def test_a_conversion_that_computes_garbage_is_refused_each_time(tmp_path, cache):
    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "m.gguf", "llama")
    for _ in range(2):
        with pytest.raises(PromptbankError, match="computes garbage: FAILED: perplexity"):
            ModelHost(str(path), device="cpu")
    (folder,) = (cache / "models").iterdir()
    check = json.loads((folder / gguf.RECORD).read_text())["check"]
    assert check["passed"] is False and check["perplexity"] > gguf.MAX_PERPLEXITY


def test_an_interrupted_conversion_leaves_no_folder(tmp_path, cache, monkeypatch):
    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "m.gguf", "llama")
    calls = []

    def dies(self, name, tensor):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(gguf._Shards, "add", dies)
    with pytest.raises(KeyboardInterrupt):
        ModelHost(str(path), device="cpu")
    assert list((cache / "models").iterdir()) == []


def test_an_older_conversion_of_the_same_file_is_replaced(tmp_path, cache, any_perplexity):
    from engine.model.convert import cached_file_hash

    path = write_gguf(build_hf(tmp_path / "hf", "llama"), tmp_path / "m.gguf", "llama")
    old = cache / "models" / f"m-{cached_file_hash(path)[:16]}"
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    host = ModelHost(str(path), device="cpu")
    assert [p.name for p in (cache / "models").iterdir()] == [host.folder.name]


def test_a_large_tensor_is_dequantised_in_row_blocks_to_the_same_values(monkeypatch):
    import gguf as gguf_py

    data = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    kind = gguf_py.GGMLQuantizationType.Q8_0
    stored = gguf.StoredTensor("t", kind, gguf_py.quants.quantize(data, kind))
    whole = gguf._dequantize(stored)
    monkeypatch.setattr(gguf, "DEQUANT_ELEMENTS", 96 * 5)
    assert np.array_equal(gguf._dequantize(stored), whole)
    assert whole.shape == data.shape


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(PromptbankError, match="not a GGUF file"):
        gguf.stored_tensors(bad)
