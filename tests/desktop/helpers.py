"""Helpers the desktop tests share: tasks, versions and the wizard filled in."""

from __future__ import annotations

from pathlib import Path

import torch

from desktop.wizard.new_task import NewTaskWizard
from engine.api.session import MethodInfo
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.desktop.conftest import writer

TRAIN_MS = 120_000
#: A prompt method the desktop has never heard of, as a worker's hello could describe it.
FANCY = MethodInfo(name="fancy", summary="a method the desktop has never heard of",
                   tensor_key="fancy", token_axis=1, input_embeddings=False, default_lr=0.05)
QUICK = {"method": "prompt", "length": 4, "init": "random", "steps": 8, "batch_size": 4,
         "eval_every": 4, "seed": 0}


def add_task_with_data(window, name: str, data, *, kind="classify"):
    lib = writer(window)
    lib.create_task(name, kind=kind, labels=["positive", "negative"] if kind == "classify"
                    else None, instruction="Classify the sentiment.")
    lib.add_dataset(name, data)
    window.session.notify_library_changed()


def add_random_version(window, host, name: str, seed: int) -> None:
    """A version with a random prompt for the loaded model (no training needed)."""
    torch.manual_seed(seed)
    geometry = ModelGeometry.of(host)
    prompt = SoftPrompt("prompt", torch.randn(4, geometry.hidden_size) * 0.1, geometry,
                        task=name, init="random")
    writer(window).add_version(name, prompt.to_bytes())
    window.session.notify_library_changed()  # as when the engine saves a version


ENGINE_MS = 30_000


def open_wizard(window) -> NewTaskWizard:
    wizard = NewTaskWizard(window.session, window.jobs, window)
    wizard.sig_task_created.connect(window._on_task_created)
    wizard.show()
    return wizard


def fill_wizard(qtbot, wizard: NewTaskWizard, name: str, path: Path, *, kind="classify"):
    wizard.name_page.name.setText(name)
    wizard.name_page.kind.setCurrentText(kind)
    wizard.name_page.instruction.setPlainText("Classify the sentiment.")
    wizard.training_page.train_now.setChecked(False)
    with qtbot.waitSignal(wizard.dataset_page.preview.sig_validated, timeout=10_000) as blocker:
        wizard.dataset_page.preview.load(str(path))
    return blocker.args[0]


def add_version(lib: Library, name: str, hidden_size: int = 32) -> None:
    geometry = ModelGeometry("f" * 32, hidden_size, 2, 2, hidden_size // 4)
    lib.add_version(name, SoftPrompt("prompt", torch.zeros(4, hidden_size), geometry,
                                     task=name).to_bytes())
