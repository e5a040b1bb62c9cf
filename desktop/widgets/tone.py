"""Text in a tone (error, ok, warning, muted) that reads on a light and on a dark palette, and
follows a switch between them; the type sizes of titles."""

from __future__ import annotations

from html import escape

from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QWidget

#: A page's title and a section's heading, the same on every page.
PAGE_TITLE = "font-size: 15pt; font-weight: bold;"
HEADING = "font-weight: bold;"
#: Each tone's colour on a light palette and on a dark one (Tailwind's 700 and 300 shades).
TONES = {"error": ("#b91c1c", "#fca5a5"), "ok": ("#166534", "#86efac"),
         "warning": ("#b45309", "#fcd34d"), "muted": ("#6b7280", "#9ca3af")}


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` draws light text on a dark window."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def tone_colour(tone: str, palette: QPalette | None = None) -> str:
    """The colour of ``tone`` on ``palette`` (default: the application's)."""
    light, dark = TONES[tone]
    return dark if is_dark(palette or QGuiApplication.palette()) else light


def set_tone(widget: QWidget, tone: str | None, extra: str = "") -> None:
    """Write ``widget``'s text in ``tone`` on the application's palette (None: the palette's
    own colour) with ``extra`` style rules; ``retone`` applies it again when that changes."""
    widget.setProperty("tone", tone or "")
    widget.setProperty("tone_extra", extra)
    colour = f"color: {tone_colour(tone)};" if tone else ""
    widget.setStyleSheet(f"{colour} {extra}".strip())


def retone(root: QWidget) -> None:
    """Apply every tone under ``root`` again (after a switch between light and dark); a widget
    with a style sheet keeps the palette it was polished with, so every such widget is
    polished again."""
    for widget in root.findChildren(QWidget):
        if widget.property("tone"):
            set_tone(widget, widget.property("tone"), widget.property("tone_extra") or "")
        elif widget.styleSheet():
            widget.setStyleSheet(widget.styleSheet())


def rich(tone: str, text: str) -> str:
    """``text`` (escaped) in ``tone``, for a rich-text label."""
    return f"<span style='color:{tone_colour(tone)}'>{escape(text)}</span>"


def dark_palette(light: QPalette) -> QPalette:
    """``light`` with the window, base and text colours of a dark system theme (what a switch
    to dark mode gives the app; screenshots and tests use it)."""
    dark = QPalette(light)
    for role, colour in ((QPalette.ColorRole.Window, "#111827"),
                         (QPalette.ColorRole.Base, "#1f2937"),
                         (QPalette.ColorRole.AlternateBase, "#374151"),
                         (QPalette.ColorRole.Button, "#1f2937"),
                         (QPalette.ColorRole.Text, "#f9fafb"),
                         (QPalette.ColorRole.WindowText, "#f9fafb"),
                         (QPalette.ColorRole.ButtonText, "#f9fafb")):
        dark.setColor(role, QColor(colour))
    return dark
