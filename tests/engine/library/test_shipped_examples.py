"""The shipped example library installs whole with evaluation sets of 100 rows or more, its
results table is the one its build wrote, and its prompts fit the embedded model."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.cli import main
from engine.commands.examples import EXAMPLE_TASKS, WAYS, results_table
from engine.library import Library
from engine.library.examples import examples_dir, install_examples
from engine.library.readers import read_examples
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.conftest import TEST_DEVICE

EXAMPLES = examples_dir()
MANIFEST = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))


def test_manifest_lists_every_shipped_prompt():
    manifest = json.loads((EXAMPLES / "manifest.json").read_text(encoding="utf-8"))
    for task in manifest["tasks"]:
        assert (EXAMPLES / task["data"]).is_file()
        assert task["prompts"], task["name"]
        for prompt in task["prompts"]:
            assert (EXAMPLES / prompt).is_file()


@pytest.mark.integration
def test_examples_install_active_and_fit_the_default_model(tmp_path, default_host):
    library = Library(tmp_path / "library")
    names = install_examples(library, EXAMPLES).installed
    assert sorted(names) == sorted(t.name for t in library.list_tasks()) and len(names) == 3
    for name in names:
        task = library.get_task(name)
        assert task.active_version_id is not None
        version = library.get_version(name)
        prompt = SoftPrompt.from_bytes(library.read_version_bytes(version))
        prompt.check_fits(ModelGeometry.of(default_host))


@pytest.mark.parametrize("task", MANIFEST["tasks"], ids=lambda t: t["name"])
def test_each_example_is_judged_on_100_rows_it_never_trains_on(task):
    train = read_examples(EXAMPLES / task["data"], input_column=task.get("input_column"),
                          output_column=task.get("output_column")).examples
    held = read_examples(EXAMPLES / task["eval_data"], input_column=task.get("input_column"),
                         output_column=task.get("output_column")).examples
    assert len(held) >= 100
    assert not {e.input for e in held} & {e.input for e in train}
    assert set(task["results"]) == {baseline for _, baseline in WAYS}
    assert all(found["n"] == len(held) for found in task["results"].values())


def test_the_readme_table_is_the_one_the_build_wrote():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert results_table(MANIFEST["tasks"], MANIFEST["model"]) in readme


def test_installed_examples_keep_their_whole_evaluation_sets(tmp_path):
    library = Library(tmp_path / "library")
    install_examples(library, EXAMPLES)
    for task in MANIFEST["tasks"]:
        held = read_examples(EXAMPLES / task["eval_data"], input_column=task.get("input_column"),
                             output_column=task.get("output_column")).examples
        assert len(library.examples(task["name"], "eval")) == len(held)


def test_examples_build_trains_measures_and_writes_the_table(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "examples"
    shutil.copytree(EXAMPLES, out, ignore=shutil.ignore_patterns("prompts", "manifest.json"))
    for task in EXAMPLE_TASKS:  # a short evaluation set keeps the test quick
        held = out / task["eval_data"]
        held.write_text("".join(held.read_text(encoding="utf-8").splitlines(True)[:13]),
                        encoding="utf-8")
    code = main(["--model", str(tiny_model_dir), "--device", TEST_DEVICE, "--json",
                 "examples", "build", "--out", str(out), "--steps", "2"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [t["name"] for t in manifest["tasks"]] == [t["name"] for t in EXAMPLE_TASKS]
    for task in manifest["tasks"]:
        assert (out / task["prompts"][0]).is_file()
        metric = "accuracy" if task["kind"] == "classify" else "exact_match"
        for baseline, found in task["results"].items():
            if "error" in found:  # four restaurant examples overflow the tiny model's context
                assert (task["kind"], baseline) == ("generate", "fewshot")
                assert "budget" in found["error"]
                continue
            assert 0.0 <= found["metrics"][metric] <= 1.0 and found["n"] in (12, 13)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert results_table(manifest["tasks"], manifest["model"]) in readme
    assert json.loads(capsys.readouterr().out)["results"].keys() == {
        t["name"] for t in manifest["tasks"]}
