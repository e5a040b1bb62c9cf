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
    assert window.minimumSizeHint().width() <= 1024 and window.minimumSizeHint().height() <= 700
