"""Whether the installed Qt binding keeps Python's reference counts right.

PySide6/shiboken6 6.12.0 hands an empty QVariant (and some bool returns) back to Python as
``None``/``True`` without a new reference. Each such call takes one reference from the
interpreter's shared ``None``; pyqtgraph makes a dozen of them per ``setData``, so a live
training curve drains it within minutes and the interpreter aborts with "Fatal Python error:
none_dealloc". The app checks this at start and says what to install instead of dying later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidgetItem

#: The release the suite passed on without reference-count errors.
GOOD_PYSIDE = "6.11.3"
PROBE_CALLS = 64


def _empty_variant_read() -> object:
    """One read of an unset item role: an empty QVariant that becomes ``None``."""
    return QTableWidgetItem().data(Qt.ItemDataRole.UserRole)


def dropped_references(probe: Callable[[], object] = _empty_variant_read,
                       calls: int = PROBE_CALLS) -> int:
    """How many references to ``None`` ``calls`` runs of ``probe`` take away (0 when right)."""
    probe()  # first-call caches do not count
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe()
    return max(0, before - sys.getrefcount(None))


def binding_problem(probe: Callable[[], object] = _empty_variant_read) -> str:
    """A one-line warning with the remedy when the binding drops references, else ""."""
    if dropped_references(probe) < PROBE_CALLS // 2:
        return ""
    return (f"PySide6 {PYSIDE_VERSION} has a reference-count bug that makes the app abort "
            f"after a while (\"none_dealloc\"). Install PySide6 {GOOD_PYSIDE} "
            f"(pip install \"pyside6-essentials=={GOOD_PYSIDE}\" \"shiboken6=={GOOD_PYSIDE}\") "
            "and start Promptbank again.")
