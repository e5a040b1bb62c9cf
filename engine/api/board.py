"""The host's board: each listening worker (a remote engine's) posts its device, memory and
jobs in a small file, so the workers of other libraries on the same host, and their users,
see who computes on which GPU.

The board is this host account's (``remote_dir()/board``); ``PROMPTBANK_BOARD`` names a
folder shared by several accounts (make it group-writable).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.api.payload import Payload
from engine.api.session import DeviceLine
from engine.errors import PromptbankError
from engine.support.fileio import atomic_write_bytes
from engine.support.paths import remote_dir

BOARD_ENV = "PROMPTBANK_BOARD"
#: How often a worker posts; a post older than ``STALE_S`` is a worker that is gone.
POST_EVERY_S = 5.0
STALE_S = 60.0


@dataclass
class BoardPost(Payload):
    """One worker's post: whose it is, for which library copy, and its device line."""

    pid: int = 0
    user: str = ""
    library: str = ""
    """The library folder the worker serves (a copy under the host's remote folder)."""
    line: DeviceLine = field(default_factory=DeviceLine)
    posted: float = 0.0


def board_dir() -> Path:
    """The folder of this host's posts."""
    env = os.environ.get(BOARD_ENV)
    return Path(env).expanduser() if env else remote_dir() / "board"


def library_label(library: str) -> str:
    """How another library is named on the board: the start of its id (the copy's folder)."""
    path = Path(library)
    return (path.parent.name if path.name == "library" else path.name)[:8]


def post(library: Path, line: DeviceLine) -> None:
    """Post (or renew) this process's line (readable by other accounts on a shared board)."""
    path = board_dir() / f"{os.getpid()}.json"
    entry = BoardPost(pid=os.getpid(), user=getpass.getuser(), library=str(library),
                      line=line, posted=time.time())
    atomic_write_bytes(path, json.dumps(entry.to_data()).encode())
    # A board several accounts share is read by all of them; the account's own stays its own.
    os.chmod(path, 0o644 if os.environ.get(BOARD_ENV) else 0o600)


def withdraw() -> None:
    """Take this process's post down (the worker ends)."""
    (board_dir() / f"{os.getpid()}.json").unlink(missing_ok=True)


def read_board() -> list[BoardPost]:
    """The posts of the workers that run now (stale or unreadable posts are skipped)."""
    folder = board_dir()
    posts = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        with contextlib.suppress(OSError, ValueError, TypeError, PromptbankError):
            entry = BoardPost.from_data(json.loads(path.read_text()))
            if time.time() - entry.posted < STALE_S and _alive(entry.pid):
                posts.append(entry)
    return posts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another account's process
    except OSError:
        return False
    return True
