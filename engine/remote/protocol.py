"""What the relay (this machine) and the host agent (the GPU host) say besides the engine's
own requests: ops named ``remote.*`` with their payloads, on the same JSON lines.

Every other line passes through the agent to the host's worker unchanged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from dataclasses import dataclass, field

from engine.api.payload import Payload
from engine.api.spec import Arg, OpSpec
from engine.api.wire import ProtocolError

PREFIX = "remote."
#: The id of the agent's greeting, the first line it sends.
GREETING_ID = "remote.hello"
#: Files travel in pieces of this size (base64 makes a line a third longer).
CHUNK = 4 << 20

#: The global options a connection passes on to the worker it starts.
WORKER_OPTIONS = ("model", "device", "dtype", "quantize", "threads", "max_input_tokens")


def worker_options(args: argparse.Namespace) -> list[str]:
    """The global options that choose the worker's model and device, as command-line
    options: the relay passes its own to the agent, and the agent its own to the worker."""
    argv: list[str] = []
    for name in WORKER_OPTIONS:
        value = getattr(args, name, None)
        if value not in (None, ""):
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += [f"--{flag.replace('_', '-')}" for flag in ("offload", "trust_remote_code")
             if getattr(args, flag, False)]
    return argv


@dataclass
class HostHello(Payload):
    """The agent's greeting: its versions, the host's copy of the library and its worker."""

    engine: str
    protocol: int
    mirror: str
    """The folder of this library's copy on the host (incoming and outgoing files too)."""
    worker: bool
    """Whether a worker already runs for this copy (a run may have gone on meanwhile)."""
    digest: str
    """The copy's catalogue digest ("" when the host holds no copy yet)."""


@dataclass
class Missing(Payload):
    """The files of a ``remote.have`` list that the host lacks."""

    missing: list[str] = field(default_factory=list)


@dataclass
class Stored(Payload):
    """A piece of a file arrived; ``done`` once the whole file is checked and in place."""

    rel: str
    received: int
    done: bool


@dataclass
class Changes(Payload):
    """The host copy's state: unchanged since ``since``, or its catalogue and its files."""

    token: str
    unchanged: bool
    digest: str = ""
    catalogue: str = ""
    """The catalogue file, base64."""
    files: dict[str, str] = field(default_factory=dict)
    """Relative path → sha256 of every synced file."""


@dataclass
class Chunk(Payload):
    """A piece of a host file, base64, and the file's whole size."""

    data: str
    size: int


@dataclass
class Listing(Payload):
    """The files an op wrote for the client (relative to the outgoing folder) → sha256."""

    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Attached(Payload):
    """The agent now passes the engine's lines to and from the host's worker."""

    started: bool
    """Whether the worker was started now (else it was running already)."""


@dataclass
class Forgotten(Payload):
    """The host's copy of the library was deleted."""

    mirror: str


SPECS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("remote.have", "Which of these files (path → sha256) the host lacks.",
           (Arg("files", "dict", required=True),), result=Missing),
    OpSpec("remote.put", "A piece of a file for the host's copy; the last piece is checked "
           "against the sha256 and the file is placed, or refused.",
           (Arg("rel", "str", required=True), Arg("sha256", "str", required=True),
            Arg("size", "int", required=True, minimum=0),
            Arg("offset", "int", required=True, minimum=0),
            Arg("data", "str", required=True)), result=Stored),
    OpSpec("remote.catalogue", "Install this catalogue in the host's copy (no worker may run).",
           (Arg("data", "str", required=True), Arg("sha256", "str", required=True)),
           result=Stored),
    OpSpec("remote.changes", "The host copy's catalogue and files, unless unchanged since.",
           (Arg("since", "str", default=""),), result=Changes),
    OpSpec("remote.get", "A piece of a host file.",
           (Arg("rel", "str", required=True), Arg("offset", "int", default=0, minimum=0)),
           result=Chunk),
    OpSpec("remote.outgoing", "The files an op wrote under an outgoing path.",
           (Arg("rel", "str", required=True),), result=Listing),
    OpSpec("remote.attach", "Start the host's worker if none runs and pass lines to it.",
           result=Attached),
    OpSpec("remote.forget", "Delete the host's copy of this library (no worker may run).",
           result=Forgotten),
)}


def encode_bytes(data: bytes) -> str:
    """Bytes as the base64 text a line carries."""
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    """The bytes of :func:`encode_bytes`; ProtocolError for text that is not base64."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProtocolError(f"a file piece is not base64 ({exc})") from exc
