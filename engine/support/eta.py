"""Time left of a long step (a model's conversion, rows being prepared) from how far it got
and how long that took."""

from __future__ import annotations

import time
from collections.abc import Callable

#: Before this share is done, or this many seconds have passed, a guess would be noise.
MIN_FRACTION = 0.02
MIN_SECONDS = 1.0


class Eta:
    """Estimates the seconds left at a steady pace; restarts when the fraction goes back
    (the next stage of the work began)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start: float | None = None
        self.last = 0.0

    def update(self, fraction: float) -> float | None:
        """Seconds left once ``fraction`` (0–1) is done, or None while too early to say."""
        now = self.clock()
        if self.start is None or fraction < self.last:
            self.start = now
        self.last = fraction
        elapsed = now - self.start
        if not MIN_FRACTION <= fraction < 1.0 or elapsed < MIN_SECONDS:
            return None
        return elapsed / fraction * (1.0 - fraction)


def eta_text(seconds: float | None) -> str:
    """' · ETA 1:05' (minutes:seconds, hours when needed), or "" without an estimate."""
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f" · ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f" · ETA {minutes}:{secs:02d}"
