"""The host agent (``promptbank remote-host``): what the relay on the user's machine reaches
through ssh on the GPU host.

It keeps this library's copy on the host (``remote_dir()/<library id>``), takes files in and
gives them out by content, and passes the engine's own lines to and from the host's worker.
The workers (``engine.remote.workers``: one per GPU) are started detached and serve Unix
sockets, so a dropped connection stops no training: the next agent finds them where they are.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO

from engine import __version__
from engine.api.payload import Payload
from engine.api.registry import validate_args
from engine.api.wire import (
    PROTOCOL_VERSION,
    Event,
    ProtocolError,
    decode_request,
    error,
    read_lines,
)
from engine.errors import PromptbankError
from engine.library.replica import (
    SYNCED_FOLDERS,
    FileHashes,
    catalogue_digest,
    catalogue_snapshot,
    install_catalogue,
    synced_path,
)
from engine.library.schema import DB_NAME
from engine.remote import protocol
from engine.remote.protocol import (
    CHUNK,
    GREETING_ID,
    PREFIX,
    Attached,
    Changes,
    Chunk,
    Forgotten,
    HostHello,
    Listing,
    Missing,
    Stored,
    decode_bytes,
    encode_bytes,
)
from engine.remote.workers import WorkerPool
from engine.support.fileio import sha256_file
from engine.support.paths import remote_dir

LIBRARY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{7,63}")
class HostAgent:
    """One connection's agent: the host copy of one library and the way to its worker."""

    def __init__(self, library_id: str, options: list[str], out: BinaryIO) -> None:
        if not LIBRARY_ID.fullmatch(library_id):
            raise PromptbankError(f"'{library_id}' is not a library id.")
        self.mirror = remote_dir() / library_id
        self.library = self.mirror / "library"
        self.options = options
        self.out = out
        self._lock = threading.Lock()
        self.hashes = FileHashes(self.library)
        self.pool = WorkerPool(self.mirror, self.library, options, self.send_raw)
        self.attached = False

    # --- lines ---------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Write one line to the relay."""
        self.send_raw(event.encode().encode())

    def send_raw(self, line: bytes) -> None:
        """Write one line as it is (the worker's events)."""
        with self._lock:
            self.out.write(line)
            self.out.flush()

    def serve(self, stream: BinaryIO) -> int:
        """Greet, then answer ``remote.*`` lines and pass the rest to the worker until the
        relay's input ends (the connection closed)."""
        self.mirror.mkdir(parents=True, exist_ok=True)
        self.send(HostHello(engine=__version__, protocol=PROTOCOL_VERSION,
                            mirror=str(self.mirror), worker=self.pool.alive(),
                            digest=catalogue_digest(self.library)).event(GREETING_ID))
        for line in read_lines(stream):
            if line.strip():
                self.handle(line)
        return 0

    def handle(self, line: bytes) -> None:
        """Answer a ``remote.*`` request here; hand any other line to the worker."""
        try:
            req = decode_request(line)
        except ProtocolError:
            req = None
        if req is None or not req.op.startswith(PREFIX):
            if req is None or not self.attached:
                what = "is not attached yet" if req is not None else "got an unreadable line"
                self.send(error(req.id if req is not None else "", f"The host's engine {what}."))
                return
            self.pool.route(req)
            return
        try:
            args = validate_args(req.op, req.args, protocol.SPECS)
            payload = getattr(self, "op_" + req.op.removeprefix(PREFIX))(**args)
        except (PromptbankError, ProtocolError, OSError) as exc:
            self.send(error(req.id, str(exc)))
            return
        self.send(payload.event(req.id))

    # --- the host's copy -----------------------------------------------------------------

    def where(self, rel: str, folders: tuple[str, ...]) -> Path:
        """The host path of a relative name (library folders, incoming or outgoing)."""
        rel = synced_path(rel, folders)
        top = rel.split("/", 1)[0]
        return (self.library if top in SYNCED_FOLDERS else self.mirror) / rel

    def op_have(self, files: dict[str, Any]) -> Payload:
        missing = [rel for rel, sha in files.items()
                   if not self._holds(self.where(rel, (*SYNCED_FOLDERS, "incoming")), sha)]
        return Missing(missing)

    @staticmethod
    def _holds(path: Path, sha: Any) -> bool:
        return path.is_file() and sha256_file(path) == sha

    def op_put(self, rel: str, sha256: str, size: int, offset: int, data: str) -> Payload:
        dest = self.where(rel, (*SYNCED_FOLDERS, "incoming"))
        part = self.mirror / ".parts" / f"{hashlib.sha256(rel.encode()).hexdigest()}.part"
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() and offset else 0
        if offset != have:
            part.unlink(missing_ok=True)
            raise PromptbankError(f"A piece of {rel} came out of order; it was dropped.",
                                  hint="Connect again; the file is sent anew.")
        with part.open("ab" if offset else "wb") as fh:
            fh.write(decode_bytes(data))
        received = part.stat().st_size
        if received < size:
            return Stored(rel, received, False)
        got = sha256_file(part)
        if received != size or got != sha256:
            part.unlink(missing_ok=True)
            raise PromptbankError(
                f"The file {rel} changed in transit (it arrived with {received:,} bytes and "
                f"sha256 {got[:16]}…, not {size:,} bytes and {sha256[:16]}…); it was refused "
                "and nothing was written.", hint="Connect again; the file is sent anew.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
        return Stored(rel, received, True)

    def op_catalogue(self, data: str, sha256: str) -> Payload:
        if self.pool.alive():
            raise PromptbankError("The host's worker is running on its copy of this library, "
                                  "so the copy cannot be replaced now.",
                                  hint="Wait for its runs to end, or stop it.")
        raw = decode_bytes(data)
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise PromptbankError("The catalogue changed in transit; it was refused and "
                                  "nothing was written.", hint="Connect again.")
        install_catalogue(self.library, raw)
        return Stored(DB_NAME, len(raw), True)

    def op_changes(self, since: str) -> Payload:
        token = self._state_token()
        if token == since:
            return Changes(token, True)
        snapshot = catalogue_snapshot(self.library)
        return Changes(token, False, digest=snapshot.digest,
                       catalogue=encode_bytes(snapshot.data), files=self.hashes.listing())

    def _state_token(self) -> str:
        """Changes whenever the catalogue or a synced file does (sizes and times only)."""
        digest = hashlib.sha256()
        for name in (DB_NAME, f"{DB_NAME}-wal"):
            path = self.library / name
            if path.exists():
                stat = path.stat()
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        for folder in SYNCED_FOLDERS:
            base = self.library / folder
            for path in sorted(base.rglob("*")) if base.is_dir() else ():
                stat = path.stat()
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()

    def op_get(self, rel: str, offset: int) -> Payload:
        path = self.where(rel, (*SYNCED_FOLDERS, "outgoing"))
        with path.open("rb") as fh:
            fh.seek(offset)
            piece = fh.read(CHUNK)
        return Chunk(encode_bytes(piece), path.stat().st_size)

    def op_outgoing(self, rel: str) -> Payload:
        path = self.where(rel, ("outgoing",))
        if path.is_file():
            return Listing({"": sha256_file(path)})
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        return Listing({p.relative_to(path).as_posix(): sha256_file(p) for p in files})

    def op_forget(self) -> Payload:
        if self.pool.alive():
            raise PromptbankError("The host's worker is running on its copy of this library; "
                                  "it was kept.", hint="Stop the worker first.")
        shutil.rmtree(self.mirror, ignore_errors=True)
        return Forgotten(str(self.mirror))

    # --- the workers -------------------------------------------------------------------

    def op_attach(self) -> Payload:
        started = self.pool.attach()
        self.attached = True
        return Attached(started)
