"""Crash points: the places where a kill must leave the library whole (before and after each
fsync and rename of the file layer, around each catalogue commit). The suite's crash-point
matrix runs a command once per point with ``PROMPTBANK_CRASH_AT=N``, killing it at the Nth."""

from __future__ import annotations

import itertools
import os
import signal

CRASH_AT_ENV = "PROMPTBANK_CRASH_AT"
#: Crash points this process has passed (counted only while the variable is set).
_PASSED = itertools.count(1)


def crash_point() -> None:
    """Kill this process (SIGKILL, as kill -9 or a power cut would) if this is point N."""
    wanted = os.environ.get(CRASH_AT_ENV)
    if wanted and next(_PASSED) == int(wanted):
        os.kill(os.getpid(), signal.SIGKILL)
