"""How many CPU threads the engine's torch operators use. Torch-free (the desktop reads it).

Torch's OpenMP threads wait for each other at every operator, so one thread slowed by a busy
neighbour slows them all: a thread per core is right only when the engine has the cores to
itself. ``auto`` (the command line's default) takes every core; ``shared`` leaves one core
(at least one thread remains) for another busy program, which is what the desktop asks for
its worker, since its own drawing runs beside it; a number sets the count exactly.
"""

from __future__ import annotations

import argparse
import os

THREADS_ENV = "PROMPTBANK_THREADS"
SETTINGS = ("auto", "shared")


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shared_threads(available: int | None = None) -> int:
    """Threads beside another busy program: one core fewer, at least one."""
    return max(1, (cores() if available is None else available) - 1)


def threads_setting(value: str) -> str:
    """``value`` checked as a setting (auto, shared or a whole number >= 1), for argparse."""
    text = str(value).strip().lower()
    if text in SETTINGS or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"'{value}' is not a thread count: use auto, shared or a "
                                     "whole number of at least 1")


def resolve_threads(setting: str | None, available: int | None = None) -> int:
    """The thread count a setting means on this machine (None or auto: every core)."""
    available = cores() if available is None else available
    text = threads_setting(setting or "auto")
    if text == "auto":
        return available
    if text == "shared":
        return shared_threads(available)
    return int(text)
