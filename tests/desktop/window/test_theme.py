"""One theme that follows the system: toned text (errors, notices, notes) and shaded tables
take their colours from the palette, and change with it between light and dark."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from desktop.widgets.tone import TONES, dark_palette, is_dark, rich, set_tone


def test_toned_text_in_the_window_follows_a_switch_to_dark_and_back(qtbot, window, qapp):
    light = qapp.palette()
    assert not is_dark(light)
    page = window.task_page
    page._say("Saving failed.", error=True)
    page._say("Saved.")
    error_light, error_dark = TONES["error"]
    ok_light, ok_dark = TONES["ok"]
    assert error_light in page.error.styleSheet() and ok_light in page.notice.styleSheet()
    try:
        qapp.setPalette(dark_palette(light))
        qtbot.waitUntil(lambda: error_dark in page.error.styleSheet())
        assert ok_dark in page.notice.styleSheet()
        # A title with a style sheet of its own is drawn in the new palette's text colour.
        text = page.title.palette().color(page.title.foregroundRole()).name()
        assert text == "#f9fafb"
        assert error_dark in rich("error", "x")
    finally:
        qapp.setPalette(light)
    qtbot.waitUntil(lambda: error_light in page.error.styleSheet())


def test_a_tone_keeps_its_extra_rules_and_none_clears_it(qtbot):
    label = QLabel("x")
    qtbot.addWidget(label)
    set_tone(label, "error", "font-weight: bold;")
    assert label.styleSheet() == f"color: {TONES['error'][0]}; font-weight: bold;"
    set_tone(label, None)
    assert label.styleSheet() == "" and not label.property("tone")
    assert rich("muted", "<b>") == f"<span style='color:{TONES['muted'][0]}'>&lt;b&gt;</span>"


def test_evaluation_groups_are_shaded_in_the_palettes_colours(qtbot, window, qapp):
    panel = window.task_page.evaluations
    panel.table.setRowCount(2)
    panel.table.setColumnCount(1)
    from PySide6.QtWidgets import QTableWidgetItem

    for row in range(2):
        panel.table.setItem(row, 0, QTableWidgetItem(str(row)))
    panel.shades = [0, 1]
    light = qapp.palette()
    try:
        qapp.setPalette(dark_palette(light))
        qtbot.waitUntil(lambda: panel.table.item(1, 0).background().color().name() == "#374151")
        assert panel.table.item(0, 0).background().color().name() == "#1f2937"
    finally:
        qapp.setPalette(light)
