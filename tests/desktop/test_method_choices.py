"""The desktop offers the methods the engine's hello names, never a list of its own."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save

from desktop.pages.inspect.norms import position_norms
from desktop.widgets.training_settings import TrainingSettings
from engine.api.session import MethodInfo

FANCY = MethodInfo(name="fancy", summary="a method the desktop has never heard of",
                   tensor_key="fancy", token_axis=1, input_embeddings=False, default_lr=0.05)
PLAIN = MethodInfo(name="plain", summary="rows of input vectors", tensor_key="plain",
                   token_axis=0, input_embeddings=True, default_lr=0.3)


def test_training_settings_offer_the_engines_methods_and_send_the_choice(qtbot):
    widget = TrainingSettings([], [FANCY, PLAIN])
    qtbot.addWidget(widget)
    assert [widget.method.itemText(i) for i in range(widget.method.count())] == [
        "fancy", "plain"]
    assert "never heard of" in widget.method.toolTip() and "fancy 0.05" in widget.lr.toolTip()
    widget.method.setCurrentText("plain")
    assert widget.config()["method"] == "plain"


def test_without_the_engines_methods_the_engine_chooses():
    widget = TrainingSettings([], [])
    assert widget.method.count() == 0 and "method" not in widget.config()


def test_norms_follow_the_token_axis_the_engine_describes():
    tensor = np.zeros((2, 4, 3), dtype=np.float32)
    tensor[:, 1, :] = 1.0  # token 1 of 4 along axis 1
    data = save({"fancy": tensor}, metadata={"format": "promptbank", "method": "fancy"})
    method, norms = position_norms(data, [FANCY])
    assert method == "fancy" and len(norms) == 4
    assert norms[1] == pytest.approx(np.sqrt(6)) and norms[0] == norms[2] == norms[3] == 0.0
