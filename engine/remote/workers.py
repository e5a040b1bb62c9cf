"""The host's workers for one library copy: one per GPU, each holding the model once.

Each worker is started detached with ``CUDA_VISIBLE_DEVICES`` set to its GPU and serves its
own socket. Requests are routed: a job goes to the worker with the fewest jobs, a request
about a job (``cancel``, ``watch``) to the worker that holds it, ``jobs`` and ``shutdown`` to
every worker (the answers merged into one), everything else to the first worker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.api import board
from engine.api.engine_target import ENGINE_ENV
from engine.api.launch import child_env, module_command
from engine.api.registry import OP_SPECS
from engine.api.session import DeviceLine, DevicesListing
from engine.api.wire import Event, Request, decode_event, error, read_lines
from engine.errors import PromptbankError

#: How many workers a host runs per library: a number, or ``auto`` (one per GPU it has).
WORKERS_ENV = "PROMPTBANK_WORKERS"
WORKER_START_S = 120.0
#: Ops every worker answers, their answers merged into one.
_EVERY_WORKER = frozenset({"jobs", "devices", "shutdown"})
_PART = "#"


def host_gpus() -> list[str]:
    """The GPUs this host shows: ``CUDA_VISIBLE_DEVICES`` if set, else those nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def worker_devices() -> list[str | None]:
    """The GPU of each worker to run (None: no GPU of its own), from ``WORKERS_ENV``."""
    gpus = host_gpus()
    setting = os.environ.get(WORKERS_ENV, "auto").strip().lower()
    count = max(1, len(gpus)) if setting in ("", "auto") else int(setting)
    if count < 1:
        raise PromptbankError(f"{WORKERS_ENV}={setting} asks for no worker.",
                              hint="Give a number of at least 1, or auto.")
    return [gpus[i] if i < len(gpus) else None for i in range(count)]


@dataclass
class HostWorker:
    """One worker of the pool: its GPU, its socket and log, and the jobs it holds."""

    index: int
    device: str | None
    socket_path: Path
    log_path: Path
    conn: socket.socket | None = None
    jobs: set[str] = field(default_factory=set)

    def alive(self) -> bool:
        """Whether a worker serves this socket now."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(5)
                probe.connect(str(self.socket_path))
            return True
        except OSError:
            return False


class WorkerPool:
    """The workers of one library copy, and the routing of the engine's lines among them."""

    def __init__(self, mirror: Path, library: Path, options: list[str],
                 send: Callable[[bytes], None]) -> None:
        self.library = library
        self.options = options
        self.send = send
        digest = hashlib.sha256(str(mirror).encode()).hexdigest()[:20]
        # AF_UNIX paths are short (about 100 bytes), so the sockets live in a short folder of
        # this user's own, named for the copy they serve.
        folder = Path(tempfile.gettempdir()) / f"promptbank-{os.getuid()}"
        self.workers = [HostWorker(i, device, folder / f"{digest}-{i}.sock",
                                   mirror / f"worker-{i}.log")
                        for i, device in enumerate(worker_devices())]
        self.owner: dict[str, HostWorker] = {}
        self._parts: dict[str, dict[int, Event]] = {}
        self._ended = 0
        self._shutting_down = False
        self._lock = threading.Lock()

    def alive(self) -> bool:
        """Whether any worker of this copy runs."""
        return any(w.alive() for w in self.workers)

    def attach(self) -> bool:
        """Start the workers that do not run and connect to all; whether any was started."""
        started = [w for w in self.workers if not w.alive()]
        for worker in started:
            self._start(worker)
        for worker in self.workers:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(worker.socket_path))
            worker.conn = conn
            threading.Thread(target=self._pass_events, args=(worker,), daemon=True,
                             name=f"worker-{worker.index}-events").start()
        return bool(started)

    def _start(self, worker: HostWorker) -> None:
        worker.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.library.mkdir(parents=True, exist_ok=True)
        argv = [*module_command("engine.cli"), "--library", str(self.library), *self.options,
                "worker", "--listen", str(worker.socket_path)]
        env = child_env()
        env.pop(ENGINE_ENV, None)  # this worker computes here, whatever the host's default
        if worker.device is not None:
            env["CUDA_VISIBLE_DEVICES"] = worker.device
        with worker.log_path.open("ab") as log:
            # A session of its own: the worker outlives the agent and the ssh connection.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, start_new_session=True)
        deadline = time.monotonic() + WORKER_START_S
        while not worker.alive():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = worker.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise PromptbankError("The host's worker did not start: "
                                      f"{' | '.join(tail) or 'it wrote nothing'}.",
                                      hint=f"Its log on the host is {worker.log_path}.")
            time.sleep(0.1)

    # --- requests ------------------------------------------------------------------------

    def route(self, req: Request) -> None:
        """Send a request to the worker (or workers) it belongs to."""
        if req.op in _EVERY_WORKER:
            with self._lock:
                self._parts[req.id] = {}
                self._shutting_down = self._shutting_down or req.op == "shutdown"
            for worker in self.workers:
                self._write(worker, Request(f"{req.id}{_PART}{worker.index}", req.op, req.args))
            return
        job = req.args.get("job")
        if req.op in ("cancel", "watch") and job in self.owner:
            worker = self.owner[job]
        elif OP_SPECS.get(req.op) is not None and OP_SPECS[req.op].kind == "job":
            worker = min(self.workers, key=lambda w: len(w.jobs))
        else:
            worker = self.workers[0]
        if req.op == "watch" or (req.op in OP_SPECS and OP_SPECS[req.op].kind == "job"):
            with self._lock:
                worker.jobs.add(req.id)
                self.owner[req.id] = worker
        self._write(worker, req)

    def _write(self, worker: HostWorker, req: Request) -> None:
        assert worker.conn is not None
        worker.conn.sendall(req.encode().encode())

    # --- events --------------------------------------------------------------------------

    def _pass_events(self, worker: HostWorker) -> None:
        assert worker.conn is not None
        with worker.conn.makefile("rb") as stream:
            for line in read_lines(stream):
                if line.strip():
                    self._pass(worker, line)
        with self._lock:
            self._ended += 1
            lost = self._ended == len(self.workers) and not self._shutting_down
        if lost:
            # Every worker died: this connection is done (the main thread is blocked reading
            # the relay's lines, so the process ends here). After a shutdown the relay still
            # collects the last results, then ends the connection itself.
            os._exit(0)

    def _pass(self, worker: HostWorker, line: bytes) -> None:
        event = decode_event(line)
        if _PART in event.id:
            self._gather(worker, event)
            return
        if event.id == "" and event.type == "hello" and worker.index:
            return  # one engine to the client: the first worker greets
        if event.final:
            with self._lock:
                worker.jobs.discard(event.id)
                self.owner.pop(event.id, None)
        self.send(line)

    def _gather(self, worker: HostWorker, event: Event) -> None:
        rid = event.id.rsplit(_PART, 1)[0]
        with self._lock:
            parts = self._parts.get(rid)
            if parts is None:
                return
            parts[worker.index] = event
            if len(parts) < len(self.workers):
                return
            del self._parts[rid]
        answers = [parts[w.index] for w in self.workers]
        failed = next((a for a in answers if a.type == "error"), None)
        if failed is not None:
            self.send(error(rid, failed.message).encode().encode())
        elif "jobs" in answers[0].data:
            self.send(Event(rid, "result", self._merge_jobs(answers)).encode().encode())
        elif "devices" in answers[0].data:
            self.send(Event(rid, "result", self._merge_devices(answers)).encode().encode())
        else:
            self.send(Event(rid, answers[0].type, answers[0].data).encode().encode())

    def _merge_jobs(self, answers: list[Event]) -> dict:
        """One ``jobs`` listing from every worker's, each line saying its worker and GPU;
        each worker's jobs are remembered as its own, so requests about them go there."""
        lines, resumable = [], {}
        for worker, answer in zip(self.workers, answers, strict=True):
            for line in answer.data.get("jobs", []):
                lines.append({**line, "worker": worker.index, "gpu": worker.device})
                with self._lock:
                    self.owner[line["job"]] = worker
                    worker.jobs.add(line["job"])
            for run in answer.data.get("resumable", []):
                resumable.setdefault(run["run_id"], run)
        return {"jobs": lines, "resumable": list(resumable.values())}

    def _merge_devices(self, answers: list[Event]) -> dict:
        """Every worker's device line (its worker and GPU said), with the jobs other
        libraries' workers on this host post to the board beside those of the same GPU."""
        lines = [DeviceLine.from_data({**line, "worker": worker.index,
                                       "gpu": worker.device or line.get("gpu")})
                 for worker, answer in zip(self.workers, answers, strict=True)
                 for line in answer.data.get("devices", [])]
        for post in board.read_board():
            if Path(post.library) == self.library:
                continue  # this library's own workers answered themselves
            theirs = [replace(job, library=board.library_label(post.library), user=post.user)
                      for job in post.line.jobs]
            key = post.line.gpu or post.line.device
            same = next((line for line in lines if (line.gpu or line.device) == key), None)
            if same is not None:
                same.jobs.extend(theirs)
            else:  # a GPU only other libraries use: its memory as they post it
                lines.append(replace(post.line, worker=None, engine_bytes=0, jobs=theirs))
        return DevicesListing(lines).to_data()
