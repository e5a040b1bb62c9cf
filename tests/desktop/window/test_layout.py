"""The window fits a laptop screen."""

from __future__ import annotations


def test_the_window_fits_a_laptop_screen_and_no_page_is_squeezed(qtbot, offline_window):
    window = offline_window
    for width, height in ((1024, 700), (1280, 720)):
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width, h=height: (window.width(), window.height()) == (w, h))
        assert window.statusBar().geometry().bottom() < height  # the status bar is on screen
        for key, page in window.pages.items():
            window.show_task_on(key, "")
            qtbot.waitUntil(page.isVisible)
            hint = page.minimumSizeHint()
            # Too big for the screen, a page scrolls rather than shrinking below its minimum
            # (where labels would be cut to "s…").
            assert page.width() >= hint.width() and page.height() >= hint.height(), key
            # And no page is wider than the laptop's window: nothing to scroll sideways to.
            assert hint.width() <= page.parentWidget().width(), (key, width)
    assert window.minimumSizeHint().width() <= 1024 and window.minimumSizeHint().height() <= 700


def test_the_pages_splitters_keep_their_sizes_across_a_restart(qtbot, library_root, settings):
    from PySide6.QtWidgets import QSplitter

    from tests.desktop.conftest import make_window

    window = make_window(qtbot, library_root, settings, "default")
    window.resize(1280, 720)
    window.show()
    named = {s.objectName(): s for s in window.findChildren(QSplitter) if s.objectName()}
    assert {"training", "playground", "task", "inspect"} <= set(named)
    history = named["playground"]
    window.show_task_on("playground", "")
    qtbot.waitUntil(history.isVisible)
    history.setSizes([600, 400])
    wanted = history.sizes()
    window.close()
    again = make_window(qtbot, library_root, settings, "default")
    again.resize(1280, 720)
    again.show()
    split = next(s for s in again.findChildren(QSplitter) if s.objectName() == "playground")
    qtbot.waitUntil(lambda: split.sizes() == wanted)


def test_the_main_actions_have_icons_and_keep_their_words(offline_window):
    from PySide6.QtWidgets import QToolBar

    toolbar = offline_window.findChild(QToolBar, "mainToolbar")
    actions = toolbar.actions()
    assert [a.text() for a in actions] == ["&New task…", "&Import…", "&Settings…",
                                           "&Restart engine"]
    assert all(not a.icon().isNull() for a in actions)
    assert toolbar.toolButtonStyle().name == "ToolButtonTextBesideIcon"
