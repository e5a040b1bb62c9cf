"""CrashLog: Python's faulthandler writes to a file in the user's log folder, and the next
start says that the app closed unexpectedly and offers that file.

A marker file lives while the app runs; a clean exit removes it. A marker left behind means
the last session ended without a clean exit (a fatal error, a kill, a power cut); the fault
log it wrote, if any, is kept under a dated name.
"""

from __future__ import annotations

import faulthandler
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import platformdirs

FAULTS = "faults.log"
MARKER = "running"


def log_folder() -> Path:
    """The user's log folder for Promptbank (``PROMPTBANK_LOGS`` overrides it)."""
    override = os.environ.get("PROMPTBANK_LOGS")
    return Path(override) if override else Path(platformdirs.user_log_dir("promptbank"))


@dataclass
class UnexpectedExit:
    """The last session ended without a clean exit; ``log`` holds what faulthandler wrote."""

    log: Path | None


class CrashLog:
    """Turns faulthandler on into the log folder and notices an unclean last exit."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or log_folder()
        self._file: TextIO | None = None

    def start(self) -> UnexpectedExit | None:
        """Check how the last session ended, then log faults of this one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        faults, marker = self.folder / FAULTS, self.folder / MARKER
        previous = None
        if marker.exists():
            kept = None
            if faults.exists() and faults.stat().st_size:
                kept = self.folder / time.strftime("crash-%Y%m%d-%H%M%S.log",
                                                   time.localtime(faults.stat().st_mtime))
                faults.replace(kept)
            previous = UnexpectedExit(kept)
        marker.write_text(str(os.getpid()), encoding="utf-8")
        self._file = faults.open("w", encoding="utf-8")
        faulthandler.enable(self._file, all_threads=True)
        return previous

    def stop(self) -> None:
        """A clean exit: faulthandler off, the empty log and the marker removed."""
        if self._file is None:
            return
        faulthandler.disable()
        self._file.close()
        self._file = None
        faults = self.folder / FAULTS
        if faults.exists() and not faults.stat().st_size:
            faults.unlink()
        (self.folder / MARKER).unlink(missing_ok=True)
