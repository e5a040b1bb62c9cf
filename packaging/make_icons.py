"""Renders resources/icons/promptbank.svg into the PNG, .ico and .icns files the installers use.

Run after changing the SVG: ``python packaging/make_icons.py`` (needs only PySide6).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    """The icon as a transparent square image of ``size`` pixels."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    """Write promptbank-N.png for every size, promptbank.ico and promptbank.icns."""
    QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "promptbank.svg"))
    for size in SIZES:
        if not render(renderer, size).save(str(ICONS / f"promptbank-{size}.png")):
            raise SystemExit(f"could not write the {size} px PNG")
    # Qt's image plugins write one size per file; 256 px is what Windows and macOS scale from.
    for suffix in ("ico", "icns"):
        if not render(renderer, 256).save(str(ICONS / f"promptbank.{suffix}")):
            raise SystemExit(f"could not write promptbank.{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
