"""ModelHost: spec resolution, loading, geometry, fingerprint, and every bad-input path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.errors import PromptbankError
from engine.model.device import pick_device, pick_dtype
from engine.model.host import ModelHost
from engine.model.spec import resolve_spec
from tests.conftest import TEST_DEVICE

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, env_home: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `promptbank` entry point in a subprocess."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_tiny_model_loads_frozen_in_eval_mode(tiny_host):
    assert not tiny_host.model.training
    assert all(not p.requires_grad for p in tiny_host.model.parameters())
    assert tiny_host.device == torch.device(TEST_DEVICE)
    assert tiny_host.dtype == torch.float32
    info = tiny_host.info()
    assert (info.hidden_size, info.layers, info.heads, info.kv_heads, info.head_dim) == (
        32, 2, 4, 2, 8)
    assert info.source == "folder"
    assert info.parameters == sum(p.numel() for p in tiny_host.model.parameters())
    assert len(info.fingerprint) == 32


def test_fingerprint_is_stable_and_changes_with_weights(tiny_model_dir, tiny_host, tmp_path):
    again = ModelHost(str(tiny_model_dir), device="cpu")
    assert again.fingerprint == tiny_host.fingerprint
    copy = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, copy)
    from safetensors.torch import load_file, save_file

    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert ModelHost(str(copy), device="cpu").fingerprint != tiny_host.fingerprint


def test_chat_template_is_applied(tiny_host):
    text = tiny_host.chat.context_text("hello")
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_device_and_dtype_choice():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    with pytest.raises(PromptbankError, match="Unknown device 'tpu'"):
        pick_device("tpu")
    with pytest.raises(PromptbankError, match="Unknown dtype 'half'"):
        pick_dtype(torch.device("cpu"), "half")
    with pytest.raises(PromptbankError, match="float16 is not supported on the CPU"):
        pick_dtype(torch.device("cpu"), "float16")


def test_missing_or_absent_gpus_get_one_line_errors(monkeypatch):
    """No CUDA at all, a CUDA build without a usable driver, and a GPU number that does not
    exist each say what is wrong and what to do."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(PromptbankError, match="no CUDA support") as info:
        pick_device("cuda")
    assert "--device cpu" in info.value.hint
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    with pytest.raises(PromptbankError, match="finds no usable GPU"):
        pick_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(PromptbankError, match=r"'cuda:3' does not exist: this machine has 1 "
                                              r"CUDA GPU \(cuda:0\)"):
        pick_device("cuda:3")


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(PromptbankError, match="does not exist"):
        resolve_spec(str(tmp_path / "nothing-here"))


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(PromptbankError, match=r"no config\.json"):
        resolve_spec(str(tmp_path))


def test_folder_without_weights_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    with pytest.raises(PromptbankError, match="no weights"):
        ModelHost(str(folder), device="cpu")


def test_truncated_gguf_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 20)
    with pytest.raises(PromptbankError, match="could not be read"):
        ModelHost(str(bad), device="cpu")
    assert not list((tmp_path / "cache" / "models").glob("broken*"))


def test_missing_gguf_is_refused(tmp_path):
    with pytest.raises(PromptbankError, match="does not exist"):
        resolve_spec(str(tmp_path / "model.gguf"))


def test_hub_id_not_in_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(PromptbankError, match="never downloads"):
        resolve_spec("someone/not-a-cached-model")


def test_cli_model_info_json(tiny_model_dir):
    proc = cli("--model", str(tiny_model_dir), "model", "info", "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("name", "source", "fingerprint", "parameters", "hidden_size", "layers",
                "device", "dtype", "load_seconds"):
        assert key in info
    assert info["hidden_size"] == 32 and info["device"] == "cpu"


@pytest.mark.parametrize("spec, fragment", [
    ("/definitely/not/here", "does not exist"),
    ("/tmp", "no config.json"),
])
def test_cli_bad_model_is_one_line_exit_2(spec, fragment):
    proc = cli("--model", spec, "model", "info")
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_unknown_device_and_debug_traceback(tiny_model_dir):
    proc = cli("--model", str(tiny_model_dir), "model", "info", "--device", "tpu")
    assert proc.returncode == 2 and "Unknown device" in proc.stderr
    assert "Traceback" not in proc.stderr
    debug = cli("--debug", "--model", str(tiny_model_dir), "model", "info", "--device", "tpu")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_cli_version_and_generate(tiny_model_dir):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("promptbank ")
    gen = cli("--model", str(tiny_model_dir), "generate", "hello", "--max-new-tokens", "4",
              "--json")
    assert gen.returncode == 0, gen.stderr
    assert "text" in json.loads(gen.stdout)


@pytest.mark.integration
def test_default_model_fingerprint_stable_and_answers(default_host):
    again = ModelHost("default", device="cpu")
    assert again.fingerprint == default_host.fingerprint
    info = default_host.info()
    assert info.source == "default" and info.hidden_size == 576 and info.layers == 30
    from engine.serving.runtime import GenRow, Runtime

    answer = Runtime(default_host).generate([GenRow("What is the capital of France?",
                                                    max_new_tokens=12)])[0].text
    assert answer.strip()


@pytest.mark.integration
def test_default_model_converts_once_with_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_CACHE", str(tmp_path / "cache"))
    stages: list[tuple[str, float]] = []
    first = ModelHost("default", device="cpu", progress=lambda s, f: stages.append((s, f)))
    assert any("De-quantising" in s for s, _ in stages)
    assert stages[-1] == ("Ready", 1.0)
    converted = list((tmp_path / "cache" / "models").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()
    assert not [p for p in converted[0].parent.iterdir() if p.name.startswith(".convert-")]
    stages.clear()
    second = ModelHost("default", device="cpu", progress=lambda s, f: stages.append((s, f)))
    assert not any("De-quantising" in s for s, _ in stages)
    assert second.fingerprint == first.fingerprint
