"""The inspect page: nearest tokens, values and scale, norms along the token axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import save

from desktop.pages.inspect.norms import position_norms
from engine.api.inspection import Similarity
from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from tests.desktop.helpers import FANCY, add_random_version, add_task_with_data


def test_norms_follow_the_token_axis_the_engine_describes():
    tensor = np.zeros((2, 4, 3), dtype=np.float32)
    tensor[:, 1, :] = 1.0  # token 1 of 4 along axis 1
    data = save({"fancy": tensor}, metadata={"format": "promptbank", "method": "fancy"})
    method, norms = position_norms(data, [FANCY])
    assert method == "fancy" and len(norms) == 4
    assert norms[1] == pytest.approx(np.sqrt(6)) and norms[0] == norms[2] == norms[3] == 0.0


def test_inspect_nearest_tokens(qtbot, window, sentiment_file, tiny_host):
    add_task_with_data(window, "gamma", sentiment_file)
    add_random_version(window, tiny_host, "gamma", 3)
    page = window.inspect
    page.set_task("gamma")
    assert page.tokens.rowCount() == 4  # norms read locally, one row per virtual token
    page.request_tokens()
    qtbot.waitUntil(lambda: page.tokens.item(0, 1) is not None, timeout=30_000)
    assert page.tokens.item(0, 1).text()


def test_inspect_shows_values_and_a_scale_and_says_why_prefixes_have_no_tokens(
        qtbot, offline_window, library_root):
    lib = Library(library_root)
    lib.create_task("deep")
    geometry = ModelGeometry("f" * 32, 32, 2, 2, 8)
    lib.add_version("deep", SoftPrompt("prefix", torch.ones(2, 2, 2, 3, 8), geometry,
                                       task="deep").to_bytes())
    offline_window.session.notify_library_changed()
    page = offline_window.inspect
    page.set_task("deep")
    assert not page.tokens_button.isEnabled()
    assert "prefix" in page.tokens_button.toolTip() and "prefix" in page.status.text()
    assert page.tokens.rowCount() == 3  # norms are still shown, one row per position
    page.show_similarity(Similarity(method="prefix", tasks=["a", "b"],
                                    matrix=[[1.0, 0.25], [0.25, 1.0]]))
    assert sorted(label.toPlainText() for label in page.heat_labels) == [
        "0.25", "0.25", "1.00", "1.00"]
    assert page.colour_bar.values == (-1.0, 1.0)
