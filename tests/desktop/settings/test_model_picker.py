"""Settings → Model: the embedded and optional models, adding one, the check, a converted
model's framing."""

from __future__ import annotations

from desktop.settings.dialog import SettingsDialog
from desktop.settings.model_panel import describe
from engine.api import optional_models as model_catalog
from engine.api.session import ModelDescription


def test_the_picker_offers_the_embedded_and_optional_models_and_adds_one(
        qtbot, offline_window, settings, monkeypatch):
    added: list[str] = []
    monkeypatch.setattr(model_catalog, "is_added", lambda name: name in added)

    def fake_add(name, progress=None):
        progress("Fetching", 0.5)
        added.append(name)

    monkeypatch.setattr(model_catalog, "add", fake_add)
    dialog = SettingsDialog(offline_window.session, settings=settings)
    qtbot.addWidget(dialog)
    panel = dialog.model
    offered = [panel.choice.itemText(i) for i in range(panel.choice.count())]
    assert offered[:2] == ["default", "gemma3-270m"]
    assert not panel.add.isVisibleTo(dialog)  # the embedded model needs no adding
    panel.choice.setCurrentText("gemma3-270m")
    assert panel.add.isVisibleTo(dialog) and panel.add.isEnabled()
    panel.add.click()
    qtbot.waitUntil(lambda: "Added Gemma 3 270M" in panel.info.text(), timeout=5000)
    assert added == ["gemma3-270m"] and not panel.add.isEnabled()


def test_check_loads_the_model_and_describes_it(qtbot, window, settings, tiny_model_dir):
    dialog = SettingsDialog(window.session, settings=settings)
    qtbot.addWidget(dialog)
    dialog.model.choice.setCurrentText(str(tiny_model_dir))
    with qtbot.waitSignal(dialog.model.sig_checked, timeout=60_000):
        dialog.model.check.click()
    text = dialog.model.info.text()
    assert "llama" in text and "context 512 tokens" in text
    assert "Forward check passed" in text and "its chat template" in text
    assert window.session.model.family == "llama"


def test_a_converted_base_model_says_how_it_is_framed_and_checked():
    info = ModelDescription(name="gemma", family="gemma3_text", parameters=268_000_000,
                            max_positions=32768, device="cpu", dtype="float32",
                            load_seconds=7.7, exactness=3e-5, template="plain",
                            conversion="passed: perplexity 12 on the check text (limit 100)")
    text = describe(info)
    assert "268M parameters" in text and "context 32,768 tokens" in text
    assert "a base model: no chat template" in text
    assert "Conversion check passed: perplexity 12" in text


def test_a_4bit_base_is_checked_in_the_engine_and_kept_for_its_next_start(
        qtbot, window, settings, tiny_model_dir, monkeypatch):
    session = window.session
    dialog = SettingsDialog(session, settings=settings)
    qtbot.addWidget(dialog)
    base = dialog.base
    assert [base.itemData(i) for i in range(base.count())] == ["", "8bit", "4bit"]
    dialog.model.choice.setCurrentText(str(tiny_model_dir))
    base.setCurrentIndex(base.findData("4bit"))
    try:
        with qtbot.waitSignal(dialog.model.sig_checked, timeout=60_000):
            dialog.model.check.click()
        assert session.model.quantization == "4bit" and session.quantize == "4bit"
        assert "Forward check passed" in dialog.model.info.text()
        restarts: list = []
        monkeypatch.setattr(session.engine, "restart", lambda args=None: restarts.append(args))
        dialog.accept()  # already loaded as asked: no restart, but remembered
        assert restarts == [] and settings.value("engine/quantize") == "4bit"
        assert session.worker_args()[4:6] == ["--quantize", "4bit"]
    finally:
        monkeypatch.undo()
        session.quantize = ""
        restore = SettingsDialog(session, settings=settings)
        qtbot.addWidget(restore)
        restore.model.choice.setCurrentText(str(tiny_model_dir))
        with qtbot.waitSignal(restore.model.sig_checked, timeout=60_000):
            restore.model.check.click()  # the shared engine back on the full base
    assert session.model.quantization == ""
