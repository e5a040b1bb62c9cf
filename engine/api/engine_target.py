"""Where the engine runs when it is not this machine: an ``ssh://`` address or a command.

``ssh://[user@]host[:port][/path/to/promptbank]`` runs ``promptbank`` on the host through the
system's ``ssh`` (its keys, agent and ``~/.ssh/config``; never a password: ssh runs in batch
mode). ``--engine-command`` gives the command that runs ``promptbank`` on the host directly
(a container, a scheduler, or ``python -m engine.cli`` in tests); the engine's own arguments
are appended to it. Torch-free, so the desktop can check an address before connecting.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.errors import PromptbankError

#: The remote engine every command that can use one uses unless --engine says otherwise.
ENGINE_ENV = "PROMPTBANK_ENGINE"
#: The ssh program and any options of its own (default ``ssh``), e.g. ``ssh -F my_config``.
SSH_ENV = "PROMPTBANK_SSH"
_SSH_OPTIONS = ("-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3")


@dataclass(frozen=True)
class EngineTarget:
    """A remote engine: how to run ``promptbank`` on its host, and its name for people."""

    label: str
    """The address or command as the user gave it (also the key of its sync state)."""
    prefix: tuple[str, ...]
    """The command that reaches the host (for ssh: ssh, its options and the destination)."""
    program: str = ""
    """For ssh, ``promptbank`` on the host (its arguments are then quoted for its shell)."""

    @classmethod
    def parse(cls, url: str | None = None, command: str | None = None) -> EngineTarget | None:
        """The target named by ``--engine`` or ``--engine-command`` (None for this machine)."""
        if url and command:
            raise PromptbankError("Give either --engine or --engine-command, not both.")
        if command:
            prefix = tuple(shlex.split(command))
            if not prefix:
                raise PromptbankError("--engine-command is empty.",
                                      hint="Give the command that runs promptbank on the host.")
            return cls(label=command, prefix=prefix)
        if not url or url == "local":
            return None
        return cls.from_url(url)

    @classmethod
    def from_url(cls, url: str) -> EngineTarget:
        """An ``ssh://[user@]host[:port][/path/to/promptbank]`` address."""
        parts = urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "ssh" or not parts.hostname or port == -1 or parts.query \
                or parts.fragment or parts.password is not None:
            raise PromptbankError(
                f"'{url}' is not an engine address.",
                hint="Write ssh://[user@]host[:port][/path/to/promptbank], for example "
                     "ssh://me@gpu-box or ssh://gpu-box:2222/opt/promptbank/bin/promptbank "
                     "(no password: ssh uses your keys).")
        dest = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        program = parts.path or "promptbank"
        if program.startswith("/~"):
            program = program[1:]
        ssh = shlex.split(os.environ.get(SSH_ENV, "ssh")) or ["ssh"]
        port_options = ("-p", str(port)) if port else ()
        return cls(label=url.strip(), prefix=(*ssh, *_SSH_OPTIONS, *port_options, dest),
                   program=program)

    @property
    def host(self) -> str:
        """The host in words, for messages."""
        return self.prefix[-1] if self.program else f"the host of '{self.label}'"

    def command(self, args: list[str]) -> list[str]:
        """The command line that runs ``promptbank args…`` on the host."""
        if self.program:
            # ssh hands the host's shell one line, so the arguments are quoted for it.
            return [*self.prefix, "--", shlex.join([self.program, *args])]
        return [*self.prefix, *args]
