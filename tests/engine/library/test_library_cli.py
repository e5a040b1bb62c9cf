"""The library commands, run in-process through the real ``promptbank`` entry point."""

from __future__ import annotations

import json
import sys

import pytest

from engine.cli import main
from engine.library import Library
from tests.engine.library_helpers import prompt_bytes, snapshot, write_jsonl

ROWS = [{"input": f"x{i}", "output": "pos" if i % 2 else "neg"} for i in range(10)]


@pytest.fixture
def run(tmp_path, capsys):
    root = tmp_path / "lib"

    def invoke(*argv: str) -> tuple[int, dict]:
        code = main(["--library", str(root), "--json", *argv])
        out = capsys.readouterr().out.strip().splitlines()
        return code, json.loads(out[-1]) if out else {}

    invoke.root = root
    return invoke


def test_task_lifecycle(run, tmp_path):
    data = write_jsonl(tmp_path / "s.jsonl", ROWS)
    code, task = run("task", "create", "sent", "--data", str(data), "--kind", "classify",
                     "--instruction", "Is it positive?")
    assert code == 0 and task["labels"] == ["neg", "pos"]
    assert task["datasets"][0]["format"] == "input/output"
    assert run("task", "list")[1]["tasks"][0]["name"] == "sent"
    code, added = run("data", "add", "sent", str(write_jsonl(tmp_path / "m.jsonl", ROWS[:4])),
                      "--role", "eval")
    assert code == 0 and added["eval_rows"] == 4
    assert run("task", "edit", "sent", "--description", "d")[1]["description"] == "d"
    code, made = run("task", "edit", "sent", "--labels", "neg,pos,meh", "--as-new", "sent3")
    assert code == 0 and made["name"] == "sent3" and made["labels"] == ["neg", "pos", "meh"]
    assert run("task", "show", "sent")[1]["labels"] == ["neg", "pos"]
    assert len(run("task", "show", "sent3")[1]["datasets"]) == 2
    assert run("task", "delete", "sent3", "--yes")[0] == 0
    assert run("task", "rename", "sent", "sentiment")[1]["name"] == "sentiment"
    shown = run("task", "show", "sentiment")[1]
    assert len(shown["datasets"]) == 2 and shown["instruction"] == "Is it positive?"
    code, error = run("task", "delete", "sentiment")
    assert code == 2 and "--yes" in error["error"]
    assert run("task", "delete", "sentiment", "--yes") == (0, {"deleted": "sentiment"})
    assert run("task", "list")[1]["tasks"] == []


def test_versions_activate_export(run, tmp_path):
    assert run("task", "create", "gen")[0] == 0
    lib = Library(run.root)
    first = lib.add_version("gen", prompt_bytes(seed=1, task="gen"))
    lib.add_version("gen", prompt_bytes(seed=2, task="gen"), parent_id=first.id)
    versions = run("versions", "gen")[1]["versions"]
    assert [(v["number"], v["parent"], v["active"]) for v in versions] == [(1, None, False),
                                                                          (2, 1, False)]
    assert run("activate", "gen", "1")[0] == 0
    assert run("versions", "gen")[1]["versions"][0]["active"] is True
    out = tmp_path / "gen.safetensors"
    assert run("export", "gen", "--format", "safetensors", "--out", str(out))[0] == 0
    assert out.read_bytes() == lib.read_version_bytes(first)
    assert run("export", "gen", "--version", "2", "--format", "peft", "--out",
               str(tmp_path / "peft"))[0] == 0
    assert (tmp_path / "peft" / "adapter_config.json").is_file()
    code, error = run("activate", "gen", "7")
    assert code == 2 and "no version 7" in error["error"]


def test_commands_without_a_model_do_not_import_torch(tmp_path):
    import subprocess

    code = ("import sys; from engine.cli import main; "
            f"main(['--library', {str(tmp_path / 'l')!r}, 'task', 'list']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(
        __import__("pathlib").Path(__file__).resolve().parents[3]))


def test_import_with_the_tiny_model(run, tmp_path, tiny_model_dir, tiny_host):
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

    prompt = prompt_bytes(task="moved", geometry=ModelGeometry.of(tiny_host))
    path = tmp_path / "moved.safetensors"
    path.write_bytes(prompt)
    code, report = run("--model", str(tiny_model_dir), "--device", "cpu", "import", str(path))
    assert code == 0 and report["format"] == "safetensors" and report["added"] == ["moved v1"]
    lib = Library(run.root)
    assert SoftPrompt.load(lib.version_path(lib.get_version("moved"))).task == "moved"
    assert lib.list_models()[0]["fingerprint"] == tiny_host.fingerprint
    before = snapshot(lib)
    other = prompt_bytes(task="x")  # made for a model with another fingerprint
    path.write_bytes(other)
    code, error = run("--model", str(tiny_model_dir), "--device", "cpu", "import", str(path))
    assert code == 2 and "--force" in error["error"]
    assert snapshot(lib) == before
