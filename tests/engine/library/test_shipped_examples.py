"""The shipped example library installs whole, and its prompts fit the embedded model."""

from __future__ import annotations

import json

import pytest

from engine.library import Library
from engine.library.examples import examples_dir, install_examples
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

EXAMPLES = examples_dir()


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
