"""A busy neighbour for benchmarks: a process that keeps one core busy while the timed work
runs (``bench train --neighbour``), as another program on a shared machine does."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

#: Time for the neighbour to start spinning before the timed work begins (seconds).
SETTLE_S = 0.5


@contextlib.contextmanager
def busy_neighbour() -> Iterator[int]:
    """Run a process that spins on one core for the duration; yields its process id."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_S)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
