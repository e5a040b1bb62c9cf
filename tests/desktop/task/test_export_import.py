"""Export and import from a task's page."""

from __future__ import annotations

import torch

from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.desktop.helpers import (
    add_random_version,
    add_task_with_data,
)


def test_export_version_as_pack_through_the_engine(qtbot, window, sentiment_file, tiny_host,
                                                   tmp_path):
    add_task_with_data(window, "to-export", sentiment_file)
    add_random_version(window, tiny_host, "to-export", 4)
    page = window.task_page
    page.set_task("to-export")
    target = tmp_path / "delta.pbpack"
    page.start_export(1, "pack", target)
    qtbot.waitUntil(lambda: "Exported to" in page.notice.text(), timeout=30_000)
    assert target.is_file() and str(target) in page.notice.text() and not page.error.text()
    page.start_export(1, "vllm", tmp_path / "for-vllm")  # the engine's model gives the frame
    qtbot.waitUntil(lambda: "for-vllm" in page.notice.text(), timeout=30_000)
    assert {p.name for p in (tmp_path / "for-vllm").iterdir()} == {
        "placement.json", "virtual_tokens.safetensors"}
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    page.start_export(1, "kobold", blocker / "delta.zip")
    qtbot.waitUntil(lambda: "Export failed" in page.error.text(), timeout=30_000)


def test_export_says_so_in_green_and_adds_the_extension(qtbot, window, sentiment_file,
                                                        tiny_host, tmp_path):
    add_task_with_data(window, "exp", sentiment_file)
    add_random_version(window, tiny_host, "exp", 22)
    page = window.task_page
    page.set_task("exp")
    page.start_export(1, "pack", tmp_path / "shared")
    qtbot.waitUntil(lambda: "Exported to" in page.notice.text(), timeout=30_000)
    assert (tmp_path / "shared.pbpack").is_file() and not (tmp_path / "shared").exists()
    assert "166534" in page.notice.styleSheet() and page.error.text() == ""


def test_import_from_the_desktop(qtbot, window, tiny_host, tmp_path):
    geometry = ModelGeometry.of(tiny_host)
    prompt = tmp_path / "shared.safetensors"
    prompt.write_bytes(SoftPrompt("prompt", torch.zeros(3, geometry.hidden_size), geometry,
                                  task="shared").to_bytes())
    dialog = window.import_prompts()
    qtbot.addWidget(dialog)
    dialog.path.setText(str(prompt))
    dialog.task.setText("from-file")
    with qtbot.waitSignal(dialog.sig_imported, timeout=60_000):
        dialog.import_button.click()
    assert "Added: from-file v1" in dialog.report.text()
    assert "from-file" in window.library.task_names()
    dialog.path.setText(str(tmp_path / "gone.zip"))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: "does not exist" in dialog.report.text(), timeout=30_000)
    dialog.close()
