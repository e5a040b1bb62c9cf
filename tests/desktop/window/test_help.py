"""Help: the guide, About, and checking this computer."""

from __future__ import annotations


def test_f1_opens_the_guide_and_about_names_the_library(qtbot, offline_window):
    from PySide6.QtCore import Qt

    from desktop.help.guide import GuideDialog, about_text

    qtbot.keyClick(offline_window, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: any(isinstance(w, GuideDialog) and w.isVisible()
                                for w in offline_window.findChildren(GuideDialog)))
    guide = offline_window.findChildren(GuideDialog)[0]
    text = guide.text.toPlainText()
    assert "prompt or prefix" in text and "Replay" in text and "95 % interval" in text
    about = about_text(offline_window.session)
    assert str(offline_window.session.library.root) in about and "Model: not loaded" in about


def test_help_check_this_computer_shows_the_verdict_and_copies_it(qtbot, offline_window):
    from PySide6.QtGui import QGuiApplication

    dialog = offline_window.check_computer()
    qtbot.addWidget(dialog)
    dialog.show_verdict({"verdict": "fail", "figures": [
        {"stage": "device", "status": "info", "target": "", "measured": "cpu"},
        {"stage": "serving", "status": "fail", "target": "", "measured": "failed: died"}]})
    assert dialog.table.rowCount() == 2 and dialog.table.item(1, 3).text() == "failed: died"
    assert "Something is wrong: serving" in dialog.state.text()
    dialog.copy.click()
    assert QGuiApplication.clipboard().text().splitlines()[2] == \
        "serving\tfail\t\tfailed: died"
