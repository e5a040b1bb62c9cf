"""Who trains a run: the owning process (id, host, start) and whether it still lives.

A run is trained by one process at a time. The owner's token (on Linux the boot id and the
process's start tick) tells a live owner from a new process that got the same id later.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.support.clock import utc_now

_WINDOWS_STILL_ACTIVE = 259
_WINDOWS_QUERY_LIMITED = 0x1000
_WINDOWS_ACCESS_DENIED = 5


@dataclass(frozen=True)
class RunOwner:
    """The process that holds a run: its id, host, when it took the run, and its token."""

    pid: int
    host: str
    since: str
    token: str | None = None

    @classmethod
    def this_process(cls) -> RunOwner:
        """The calling process as an owner."""
        return cls(os.getpid(), socket.gethostname(), utc_now(), process_token(os.getpid()))

    def same_process(self, other: RunOwner) -> bool:
        """Whether both name one process (the time of the claim does not matter)."""
        return (self.pid, self.host, self.token) == (other.pid, other.host, other.token)

    def blocks(self, claimant: RunOwner) -> bool:
        """Whether this owner keeps ``claimant`` from taking the run: another, live process."""
        return not self.same_process(claimant) and self.is_alive()

    def is_alive(self) -> bool:
        """False only when the process is known to be gone: it ran on this host and has
        exited (or its id now belongs to another process). Another host's owner counts as
        alive, since it cannot be checked from here."""
        if self.host != socket.gethostname():
            return True
        return process_alive(self.pid, self.token)

    def describe(self) -> str:
        """The owner in words, for messages."""
        return f"process {self.pid} on {self.host} (since {self.since.replace('T', ' ')})"


def _linux_stat(pid: int) -> tuple[str, str] | None:
    """A Linux process's state letter and token (boot id and start tick); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name in parentheses may hold spaces, so count fields after the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], f"{boot}:{fields[19]}"


def process_token(pid: int) -> str | None:
    """What names process ``pid`` for good where the system tells (Linux), else None."""
    stat = _linux_stat(pid) if sys.platform.startswith("linux") else None
    return stat[1] if stat else None


def process_alive(pid: int, token: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, given its token, is the same one)."""
    if sys.platform.startswith("linux"):
        stat = _linux_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or exited and not yet reaped
            return False
        return token is None or stat[1] == token
    if os.name == "nt":
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_alive(pid: int) -> bool:
    # os.kill would terminate the process on Windows, so ask the kernel for its exit code.
    kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel.OpenProcess(_WINDOWS_QUERY_LIMITED, False, pid)
    if not handle:
        return kernel.GetLastError() == _WINDOWS_ACCESS_DENIED
    try:
        code = ctypes.c_ulong()
        kernel.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == _WINDOWS_STILL_ACTIVE
    finally:
        kernel.CloseHandle(handle)
