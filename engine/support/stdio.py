"""The standard streams of a process that speaks JSON lines on them (the worker, the relay,
the host agent)."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO


def protocol_stdout() -> TextIO:
    """A private handle on the real stdout; fd 1 and ``sys.stdout`` then point at stderr.

    Stray prints (ours or a library's, even from C) can then never corrupt the protocol.
    """
    return os.fdopen(_take_stdout(), "w", encoding="utf-8", buffering=1)


def protocol_stdout_bytes() -> BinaryIO:
    """:func:`protocol_stdout` for a process that passes lines on as bytes."""
    return os.fdopen(_take_stdout(), "wb")


def _take_stdout() -> int:
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return fd


def protocol_stdin() -> BinaryIO:
    """A private handle on stdin: the interpreter, exiting, must not wait for the lock of a
    stream a reader thread is blocked in (that aborts the process)."""
    return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
