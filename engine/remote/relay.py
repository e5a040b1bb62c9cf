"""The relay (``promptbank --engine URL worker``): a worker to its client, whose work runs on
another machine.

The desktop or a script starts it as it starts a local worker and speaks the same requests
and events. The relay reaches the host agent (``engine.remote.host``) through ssh or the
engine command, brings the host's copy of the library up to date by content hash, and passes
lines both ways: files named in requests go to the host first, files an op writes come back
after, and every result's new versions, checkpoints and metrics are copied into the library
here (which stays the truth) before the client hears of the result.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from engine.api.engine_target import EngineTarget
from engine.api.registry import OP_SPECS
from engine.api.wire import (
    PROTOCOL_VERSION,
    Event,
    ProtocolError,
    Request,
    decode_event,
    decode_request,
    error,
    read_lines,
    replace_text,
    request_id_of,
)
from engine.errors import PromptbankError
from engine.library import Library
from engine.library.replica import (
    FileHashes,
    catalogue_digest,
    catalogue_snapshot,
    install_catalogue,
    synced_path,
)
from engine.remote.protocol import (
    CHUNK,
    GREETING_ID,
    Changes,
    Chunk,
    Forgotten,
    HostHello,
    Listing,
    Missing,
    decode_bytes,
    encode_bytes,
    worker_options,
)
from engine.support.fileio import atomic_write_bytes, sha256_bytes
from engine.support.paths import library_dir
from engine.support.safe_json import loads as safe_loads
from engine.support.stdio import protocol_stdin, protocol_stdout

STATE_FILE = "remote.json"
GREETING_S = 180.0
#: While events stream, the library here is brought up to date at most this often.
COLLECT_EVERY_S = 5.0
#: How often one collection is tried when a file changes between the listing and the reading.
COLLECT_TRIES = 3
_END = object()


@dataclass
class SyncState:
    """This library's id on hosts, and per engine the catalogue digest both sides last had."""

    id: str
    synced: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> SyncState:
        path = root / STATE_FILE
        try:
            data = safe_loads(path.read_bytes())
            return cls(str(data["id"]), dict(data.get("synced", {})))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(uuid.uuid4().hex)

    def save(self, root: Path) -> None:
        atomic_write_bytes(root / STATE_FILE,
                           json.dumps({"id": self.id, "synced": self.synced}).encode())


class Upstream:
    """The connection to the host agent: a child process (ssh or the engine command), the
    relay's own calls on it, and the worker's events, with the bytes counted both ways."""

    def __init__(self, target: EngineTarget, args: list[str]) -> None:
        self.target = target
        self.argv = target.command(args)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise PromptbankError(f"Could not run '{self.argv[0]}' to reach {target.host}: "
                                  f"{exc.strerror or exc}.",
                                  hint="Install OpenSSH's client, or check --engine-command."
                                  ) from exc
        self.sent = self.received = 0
        self.events: queue.Queue[Any] = queue.Queue()
        self.greeting: queue.Queue[Any] = queue.Queue()
        self._calls: dict[str, queue.Queue[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        assert self.proc.stdout and self.proc.stderr
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True,
                         name="upstream").start()
        threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True,
                         name="upstream-stderr").start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for line in read_lines(stream):
                self.received += len(line)
                if line.strip():
                    self._route(line)
        finally:
            for waiting in (self.events, self.greeting, *self._calls.values()):
                waiting.put(_END)

    def _route(self, line: bytes) -> None:
        try:
            event = decode_event(line)
        except ProtocolError as exc:
            self.stderr.append(f"unreadable line from the host ({exc})")
            return
        if event.id == GREETING_ID:
            self.greeting.put(event)
        elif event.id in self._calls:
            self._calls[event.id].put(event)
        else:
            self.events.put(event)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr.append(line)
                print(f"host: {line}", file=sys.stderr, flush=True)

    def send(self, line: bytes) -> None:
        """Write one line to the agent."""
        assert self.proc.stdin
        with self._lock:
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise self.failure() from exc
            self.sent += len(line)

    def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one ``remote.*`` op on the agent; its result's fields, or its error raised."""
        rid = f"relay-{next(self._ids)}"
        answers: queue.Queue[Any] = queue.Queue()
        self._calls[rid] = answers
        try:
            self.send(Request(rid, op, args or {}).encode().encode())
            event = answers.get()
        finally:
            self._calls.pop(rid, None)
        if event is _END:
            raise self.failure()
        if event.type == "error":
            raise PromptbankError(event.message)
        return event.data

    def close(self) -> None:
        """End the connection (the agent ends; a worker it attached goes on)."""
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def failure(self) -> PromptbankError:
        """Why the connection ended, in words: no Promptbank on the host, no host, or lost."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        said = " | ".join(list(self.stderr)[-3:])
        host = self.target.host
        if code == 127 or "command not found" in said or "No such file" in said:
            return PromptbankError(
                f"Promptbank is not installed on {host}, or not where the address points "
                f"({said or f'exit code {code}'}).",
                hint="Install it there (the Linux tarball, or `make setup` in a clone; then "
                     "`promptbank engine install` for its GPU) and give the program's full "
                     "path in the address, e.g. ssh://host/opt/promptbank/promptbank.")
        if code == 255 and self.target.program:
            return PromptbankError(f"Could not connect to {host}: {said or 'ssh failed'}.",
                                   hint="Check the address, and that `ssh HOST` works "
                                        "without a password (keys or an agent).")
        return PromptbankError(
            f"The connection to {host} was lost ({said or f'exit code {code}'}).",
            hint="Runs go on on the host; connect again to see them and collect results.")


@dataclass
class Forwarded:
    """A request passed to the host: its op and the files it writes for the client."""

    op: str
    outputs: list[tuple[str, str]] = field(default_factory=list)
    """(host path, local path) of each file or folder the op writes."""


class FileChanged(PromptbankError):
    """A file read from the host does not match the sha256 the host named for it."""


class Relay:
    """Speaks the worker protocol to its client and runs the work on the engine's host."""

    def __init__(self, target: EngineTarget, root: Path, options: list[str],
                 out: TextIO = sys.stdout) -> None:
        self.target = target
        self.root = Path(root)
        self.options = options
        self.out = out
        self._out_lock = threading.Lock()
        self.state = SyncState.load(self.root)
        self.hashes = FileHashes(self.root)
        self.upstream: Upstream | None = None
        self.greeting: HostHello | None = None
        self.requests: dict[str, Forwarded] = {}
        self.token = ""
        self.last_collect = 0.0
        self.client_done = False

    # --- connecting ----------------------------------------------------------------------

    def connect(self) -> HostHello:
        """Reach the agent, bring both copies of the library level, attach to the worker."""
        greeting = self.open()
        self.sync(greeting)
        assert self.upstream
        self.upstream.call("remote.attach")
        return greeting

    def open(self) -> HostHello:
        """Reach the agent and read its greeting (nothing is copied yet)."""
        Library(self.root).close()  # the library here exists (and is current) before syncing
        self.state.save(self.root)
        self.upstream = Upstream(self.target, [*self.options, "remote-host",
                                               "--library-id", self.state.id])
        try:
            first = self.upstream.greeting.get(timeout=GREETING_S)
        except queue.Empty:
            self.upstream.proc.kill()
            raise PromptbankError(f"{self.target.host} did not answer within "
                                  f"{GREETING_S:.0f} s.") from None
        if first is _END:
            raise self.upstream.failure()
        greeting = HostHello.from_data(first.data)
        if greeting.protocol != PROTOCOL_VERSION:
            raise PromptbankError(
                f"The Promptbank on {self.target.host} ({greeting.engine}) speaks protocol "
                f"{greeting.protocol}, this one {PROTOCOL_VERSION}.",
                hint="Install the same version on both machines.")
        self.greeting = greeting
        return greeting

    def forget(self) -> str:
        """Delete the host's copy of this library (after ``open``); the folder it was in."""
        assert self.upstream
        done = Forgotten.from_data(self.upstream.call("remote.forget"))
        self.state.synced.pop(self.target.label, None)
        self.state.save(self.root)
        return done.mirror

    def sync(self, greeting: HostHello) -> None:
        """Push this library to the host, or collect the host's results first; refuse when
        both changed since they last met, so neither side's work is overwritten."""
        last = self.state.synced.get(self.target.label)
        local = catalogue_digest(self.root)
        host_changed = bool(greeting.digest) and greeting.digest != last
        if greeting.worker or host_changed:
            if local != last and greeting.digest != local:
                raise PromptbankError(
                    f"This library changed here since it last met its copy on "
                    f"{self.target.host}, and that copy changed too (it holds results not "
                    "yet collected here) or a worker still runs on it, so neither was "
                    "changed.",
                    hint="If a run goes on there, let it end (an idle worker stops after 30 "
                         "minutes) and connect again; to keep this library as it is, delete "
                         "the host's copy with `promptbank --engine ADDRESS remote forget`.")
            self.collect()
        else:
            self.push()

    def push(self) -> None:
        """Send the files the host lacks, then the catalogue (the host copy becomes this)."""
        assert self.upstream
        files = self.hashes.listing()
        missing = Missing.from_data(self.upstream.call("remote.have", {"files": files}))
        for rel in missing.missing:
            self.send_file(synced_path(rel), (self.root / rel).read_bytes())
        snapshot = catalogue_snapshot(self.root)
        self.upstream.call("remote.catalogue", {"data": encode_bytes(snapshot.data),
                                                "sha256": sha256_bytes(snapshot.data)})
        self.remember(snapshot.digest)

    def remember(self, digest: str) -> None:
        self.state.synced[self.target.label] = digest
        self.state.save(self.root)

    def send_file(self, rel: str, data: bytes) -> None:
        """One file to the host, in pieces; the host checks the whole against its sha256."""
        assert self.upstream
        sha = sha256_bytes(data)
        for offset in range(0, max(len(data), 1), CHUNK):
            self.upstream.call("remote.put", {"rel": rel, "sha256": sha, "size": len(data),
                                              "offset": offset,
                                              "data": encode_bytes(data[offset:offset + CHUNK])})

    def fetch(self, rel: str, sha: str) -> bytes:
        """One host file, checked against the sha256 the host named for it."""
        assert self.upstream
        pieces: list[bytes] = []
        got = 0
        while True:
            chunk = Chunk.from_data(self.upstream.call("remote.get", {"rel": rel,
                                                                      "offset": got}))
            piece = decode_bytes(chunk.data)
            pieces.append(piece)
            got += len(piece)
            if got >= chunk.size or not piece:
                break
        data = b"".join(pieces)
        if sha256_bytes(data) != sha:
            raise FileChanged(f"The file {rel} changed in transit from the host; it was "
                              "refused and the library here was not changed.",
                              hint="Connect again; the file is fetched anew.")
        return data

    def collect(self) -> None:
        """Copy what changed on the host into the library here: files first (each checked),
        then the catalogue in one step, so the catalogue never names a missing file."""
        assert self.upstream
        self.last_collect = time.monotonic()
        for attempt in range(COLLECT_TRIES):
            try:
                self._collect()
                return
            except FileChanged:
                # A running job may replace its checkpoint between the listing and the
                # reading: ask again. A file that never matches is refused.
                if attempt == COLLECT_TRIES - 1:
                    raise

    def _collect(self) -> None:
        changes = Changes.from_data(self.upstream.call("remote.changes",
                                                       {"since": self.token}))
        if changes.unchanged:
            return
        for rel, sha in changes.files.items():
            path = self.root / synced_path(rel)
            if not path.is_file() or self.hashes.sha256(rel) != sha:
                atomic_write_bytes(path, self.fetch(rel, sha))
        for rel in self.hashes.listing(("checkpoints",)):
            if rel not in changes.files:  # the host removed a finished run's checkpoints
                (self.root / rel).unlink(missing_ok=True)
        install_catalogue(self.root, decode_bytes(changes.catalogue), digest=changes.digest)
        self.remember(changes.digest)
        self.token = changes.token

    # --- requests and events -------------------------------------------------------------

    def serve(self, stream: BinaryIO) -> int:
        """Pass the client's requests on (stdin) and the events back (stdout) until either
        side ends; the exit status (1 when the connection was lost)."""
        assert self.upstream
        threading.Thread(target=self._read_requests, args=(stream,), daemon=True,
                         name="requests").start()
        while True:
            event = self.upstream.events.get()
            if event is _END:
                break
            self._pass(event)
        if self.client_done:
            return 0
        print(f"promptbank: error: {self.upstream.failure()}", file=sys.stderr, flush=True)
        return 1

    def _read_requests(self, stream: BinaryIO) -> None:
        assert self.upstream
        try:
            for line in read_lines(stream):
                if line.strip():
                    self._forward(line)
        except PromptbankError:
            return  # the connection failed; the event loop ends and says why
        self.client_done = True  # the client's input ended: a clean end of the connection
        self.upstream.close()

    def _forward(self, line: bytes) -> None:
        assert self.upstream and self.greeting
        try:
            req = decode_request(line)
        except ProtocolError as exc:
            self.write(error(request_id_of(line), f"Malformed request: {exc}."))
            return
        try:
            forwarded = self.translate(req)
        except (PromptbankError, OSError) as exc:
            self.write(error(req.id, str(exc)))
            return
        self.requests[req.id] = forwarded
        # The host's workers tag each connection's ids themselves, so an earlier
        # connection's events never come here under a colliding id.
        self.upstream.send(Request(req.id, req.op, req.args).encode().encode())

    def translate(self, req: Request) -> Forwarded:
        """Send the request's input files to the host and point its output paths there
        (rewriting ``req.args`` in place)."""
        forwarded = Forwarded(req.op)
        spec = OP_SPECS.get(req.op)
        for arg in spec.args if spec else ():
            value = req.args.get(arg.name)
            if not arg.file or not isinstance(value, str) or not value:
                continue
            local = Path(value).expanduser()
            if arg.file == "in":
                req.args[arg.name] = self.upload(local)
            else:
                host = f"{self.greeting.mirror}/outgoing/{req.id}/{local.name}"
                req.args[arg.name] = host
                forwarded.outputs.append((host, str(local.absolute())))
        return forwarded

    def upload(self, local: Path) -> str:
        """A file or folder of this machine sent to the host (once per content); its path
        there, under the same name."""
        assert self.greeting
        if local.is_file():
            files = {"": local.read_bytes()}
        elif local.is_dir():
            files = {p.relative_to(local).as_posix(): p.read_bytes()
                     for p in sorted(local.rglob("*")) if p.is_file()}
        else:
            raise PromptbankError(f"{local} is not a file or folder on this machine.",
                                  hint="Check the path; the engine's host reads it from here.")
        key = sha256_bytes(json.dumps(sorted((k, sha256_bytes(v)) for k, v in files.items()))
                           .encode())[:16]
        base = f"incoming/{key}/{local.name}"
        wanted = {f"{base}/{sub}" if sub else base: data for sub, data in files.items()}
        missing = Missing.from_data(self.upstream.call(
            "remote.have", {"files": {rel: sha256_bytes(d) for rel, d in wanted.items()}}))
        for rel in missing.missing:
            self.send_file(rel, wanted[rel])
        return f"{self.greeting.mirror}/{base}"

    def _pass(self, event: Event) -> None:
        """One worker event to the client; a result first brings its files and the
        library's changes here."""
        if event.final:
            event = self._finish(event)
        elif time.monotonic() - self.last_collect > COLLECT_EVERY_S and event.type == "progress":
            self._try_collect()
        self.write(event)
        if self.client_done and self.upstream:
            self.upstream.close()  # the host's workers ended as asked, or the client left

    def _finish(self, event: Event) -> Event:
        forwarded = self.requests.pop(event.id, None)
        if forwarded is not None and forwarded.op == "shutdown" and event.type == "result":
            self.client_done = True  # the host's worker ends as asked: no connection lost
        try:
            if forwarded is not None and event.type == "result":
                for host, local in forwarded.outputs:
                    self.bring_back(host, Path(local))
                    event = Event(event.id, event.type, replace_text(event.data, host, local))
            self.collect()
        except PromptbankError as exc:
            return error(event.id, f"The engine's host finished this, but its results could "
                         f"not be copied here: {exc} They wait on the host: connect again to "
                         "collect them.")
        return event

    def _try_collect(self) -> None:
        try:
            self.collect()
        except PromptbankError as exc:
            print(f"relay: could not bring the library up to date: {exc}", file=sys.stderr)

    def bring_back(self, host: str, local: Path) -> None:
        """The file or folder an op wrote on the host, written here at ``local``."""
        assert self.upstream and self.greeting
        rel = host.removeprefix(f"{self.greeting.mirror}/")
        listing = Listing.from_data(self.upstream.call("remote.outgoing", {"rel": rel}))
        for sub, sha in listing.files.items():
            data = self.fetch(f"{rel}/{sub}" if sub else rel, sha)
            atomic_write_bytes(local / sub if sub else local, data)

    def write(self, event: Event) -> None:
        """One event line to the client."""
        with self._out_lock:
            try:
                self.out.write(event.encode())
                self.out.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.client_done = True


def run_relay(target: EngineTarget, args: argparse.Namespace) -> int:
    """``promptbank --engine ADDRESS worker``: connect, then relay stdin and stdout until
    either side ends; a connection that cannot be made is said on stderr (exit status 1)."""
    relay = Relay(target, library_dir(args.library), worker_options(args),
                  out=protocol_stdout())
    try:
        relay.connect()
    except PromptbankError as exc:
        print(f"promptbank: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    return relay.serve(protocol_stdin())
