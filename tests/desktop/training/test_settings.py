"""The training settings: methods from the engine, checkpoints, the memory a run needs."""

from __future__ import annotations

from desktop.widgets.training_settings import TrainingSettings
from engine.api.session import MethodInfo
from tests.desktop.helpers import FANCY, add_task_with_data


def test_checkpoint_interval_is_a_training_setting(qtbot):
    widget = TrainingSettings([], [])
    qtbot.addWidget(widget)
    assert widget.config()["checkpoint_every"] == 50
    widget.checkpoint_every.setValue(0)
    assert widget.checkpoint_every.text() == "only at the start and when stopped"
    widget.checkpoint_every.setValue(3)
    assert widget.config()["checkpoint_every"] == 3


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


def test_the_train_dialog_shows_the_memory_the_run_needs(qtbot, window, sentiment_file):
    from desktop.pages.task.dialogs import TrainDialog

    add_task_with_data(window, "memory-line", sentiment_file)
    dialog = TrainDialog("memory-line", ["memory-line"], session=window.session)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.memory.plan is not None, timeout=30_000)
    assert dialog.memory.text().startswith("Memory: about ")
    assert "Fits: 8 row(s) per pass" in dialog.memory.text()
    dialog.settings.batch.setValue(4)
    qtbot.waitUntil(lambda: dialog.memory.plan.rows_per_pass == 4, timeout=30_000)
