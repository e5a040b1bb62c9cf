"""The GPU engine: a Python environment with the torch build that fits this machine's GPU.

The installed app carries CPU torch. ``install`` makes an environment in the user's data
folder with uv (a dependency of the app): the torch build uv picks for the driver, at the
app's torch version, and the engine's packages pinned by the app's ``constraints.txt``. It
is built beside the working one and swapped in only once a worker started from it, so a
failed or cancelled install leaves everything as it was. Torch-free (the desktop uses it).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from engine import __version__
from engine.api.launch import child_env, constraints_file, module_command, uv_binary
from engine.api.wire import ProtocolError, decode_event
from engine.errors import PromptbankError
from engine.support.paths import APP_NAME

#: What the worker imports besides torch (pyproject's dependencies without the GUI's).
ENGINE_PACKAGES = ("transformers", "gguf", "safetensors", "sqlite-utils", "platformdirs",
                   "numpy", "psutil", "starlette", "uvicorn")
#: Takes torch from the configured package index as it is (a mirror or a wheel folder, set
#: with uv's own settings such as UV_INDEX_URL or UV_FIND_LINKS) instead of PyTorch's.
INDEX_BACKEND = "index"
MANIFEST = "promptbank-engine.json"
# uv's backends whose torch the engine can drive (ROCm builds run as "cuda"; xpu does not).
_USABLE_BACKEND = re.compile(r"auto|cpu|cu\d+|rocm[\d.]+")
_NETWORK_WORDS = ("dns error", "connect", "failed to fetch", "timed out", "network",
                  "connection refused", "offline")
_PROBE = """
import json, torch, transformers
cuda = torch.cuda.is_available()
mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                  "accelerator": "cuda" if cuda else "mps" if mps else None,
                  "device_name": torch.cuda.get_device_name(0) if cuda else None}))
"""

Progress = Callable[[str, float], None]
Log = Callable[[str], None]


class InstallCancelled(PromptbankError):
    """The user stopped an install; nothing was changed."""


@dataclass(frozen=True)
class EngineStatus:
    """The GPU engine as found on disk: none, ready, outdated or broken (with the reason)."""

    state: str
    folder: str
    python: str | None = None
    backend: str | None = None
    torch: str | None = None
    accelerator: str | None = None
    device_name: str | None = None
    installed: str | None = None
    reason: str = ""

    @property
    def ready(self) -> bool:
        """True when the desktop should start its worker from this environment."""
        return self.state == "ready"

    def to_dict(self) -> dict:
        """A JSON-friendly copy."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people: what is installed and what it runs on, or why not."""
        if not self.ready:
            return self.reason
        device = self.device_name or self.accelerator or "CPU only"
        return f"GPU engine ready: torch {self.torch} on {device} ({self.folder})."


def _quiet(*_args: object) -> None:
    """Default progress and log sink."""


def engine_home() -> Path:
    """Where the GPU engine lives: ``$PROMPTBANK_ENGINE_HOME``, else the user data folder."""
    env = os.environ.get("PROMPTBANK_ENGINE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME)) / "engine"


def env_python(env: Path) -> Path:
    """The interpreter of the environment ``env``."""
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def expected_pins() -> dict[str, str]:
    """What an environment must have been installed for: this app's version, torch and pins."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError as exc:
        raise PromptbankError("This installation of Promptbank has no torch to match.",
                              hint="Reinstall Promptbank.") from exc
    constraints = hashlib.sha256(constraints_file().read_bytes()).hexdigest()
    return {"promptbank": __version__, "torch": torch_version.split("+")[0],
            "constraints": constraints}


def status(home: Path | None = None) -> EngineStatus:
    """Read the GPU engine's state from disk (no process is started)."""
    env = (home or engine_home()) / "env"
    if not env.exists():
        return EngineStatus("none", str(env), reason="No GPU engine is installed.")
    try:
        record = json.loads((env / MANIFEST).read_text(encoding="utf-8"))
        fields = {k: record[k] for k in ("backend", "torch", "accelerator", "device_name",
                                         "installed")}
        pins = record["pins"]
    except (OSError, ValueError, KeyError, TypeError):
        return EngineStatus("broken", str(env), reason=f"The GPU engine in {env} is "
                            "incomplete; the CPU engine is used. Install it again or remove it.")
    python = env_python(env)
    found = EngineStatus("ready", str(env), python=str(python), **fields)
    if not python.is_file():
        return EngineStatus(**{**found.to_dict(), "state": "broken", "reason":
                               f"The GPU engine's Python ({python}) is missing; the CPU engine "
                               "is used. Install the GPU engine again or remove it."})
    if pins != expected_pins():
        return EngineStatus(**{**found.to_dict(), "state": "outdated", "reason":
                               "The GPU engine was installed for another version of "
                               "Promptbank; the CPU engine is used until you install it again."})
    return found


def torch_backends() -> list[str]:
    """The ``--torch-backend`` values this app accepts: uv's usable ones, then ``index``."""
    out = subprocess.run([uv_binary(), "pip", "install", "--help"], capture_output=True,
                         text=True, check=False).stdout
    match = re.search(r"--torch-backend.*?\[possible\s+values:\s*([^\]]+)\]", out, re.S)
    names = re.split(r",\s*", match.group(1).strip()) if match else []
    return [n for n in names if _USABLE_BACKEND.fullmatch(n)] + [INDEX_BACKEND]


def check_backend(backend: str) -> str:
    """``backend`` if this app can install it, else a clear error listing the choices."""
    choices = torch_backends()
    if backend not in choices:
        cuda = [c for c in choices if c.startswith("cu")]
        raise PromptbankError(
            f"Unknown torch backend '{backend}'.",
            hint=f"Use auto (fits the driver), cpu, {INDEX_BACKEND}, or a CUDA/ROCm build "
            f"such as {', '.join(cuda[:3])}.")
    return backend


class _Runner:
    """Runs install steps as child processes: output to the log, cancellable at any time."""

    def __init__(self, home: Path, log: Log, cancel: threading.Event) -> None:
        self.home = home
        self.log = log
        self.cancel = cancel
        self.log_path = home / "install.log"
        self.log_path.write_text("", encoding="utf-8")

    def _read(self, proc: subprocess.Popen[str], tail: collections.deque[str]) -> None:
        assert proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as out:
            for raw in proc.stdout:
                line = raw.rstrip()
                out.write(line + "\n")
                tail.append(line)
                self.log(line)

    def run(self, argv: list[str], step: str, env: dict[str, str] | None = None) -> list[str]:
        """Run ``argv``; its output lines, or an error naming ``step`` and uv's reason."""
        self.log("$ " + " ".join("<script>" if "\n" in arg else arg for arg in argv))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, cwd=self.home, env=env,
                                start_new_session=os.name != "nt")
        tail: collections.deque[str] = collections.deque(maxlen=200)
        reader = threading.Thread(target=self._read, args=(proc, tail), daemon=True)
        reader.start()
        try:
            while proc.poll() is None:
                if self.cancel.wait(0.1):
                    raise InstallCancelled("The GPU engine install was cancelled; nothing was "
                                           "changed and the CPU engine is still used.")
        except BaseException:
            self._kill(proc)
            raise
        reader.join()
        if proc.returncode != 0:
            raise self._failure(step, list(tail))
        return list(tail)

    def _kill(self, proc: subprocess.Popen[str]) -> None:
        # uv may have children of its own (unpacking, builds): end its whole session.
        if os.name != "nt":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()

    def _failure(self, step: str, lines: list[str]) -> PromptbankError:
        errors = [ln.strip() for ln in lines if ln.strip()]
        last = errors[-1] if errors else "no output"
        first = next((ln for ln in errors if ln.lower().startswith("error")), last)
        reason = first if first == last else f"{first} ({last})"
        if any(word in " ".join(errors).lower() for word in _NETWORK_WORDS):
            hint = ("Check the internet connection (or point uv at a mirror with "
                    "UV_INDEX_URL) and try again; the CPU engine is unchanged.")
        else:
            hint = f"The full log is {self.log_path}; the CPU engine is unchanged."
        return PromptbankError(f"Installing the GPU engine failed while {step}: {reason}.",
                               hint=hint)


def install(backend: str = "auto", *, progress: Progress = _quiet, log: Log = _quiet,
            cancel: threading.Event | None = None, home: Path | None = None) -> EngineStatus:
    """Install (or replace) the GPU engine; the old one and the CPU engine stay until it works."""
    backend = check_backend(backend)
    pins = expected_pins()
    home = home or engine_home()
    home.mkdir(parents=True, exist_ok=True)
    staging = home / "env.new"
    shutil.rmtree(staging, ignore_errors=True)
    runner = _Runner(home, log, cancel or threading.Event())
    uv = uv_binary()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        progress(f"Creating the engine environment (Python {version})", 0.05)
        runner.run([uv, "venv", "--no-project", "--python", version, str(staging)],
                   f"creating the Python {version} environment")
        progress(f"Downloading and installing torch {pins['torch']} ({backend}) and the "
                 "engine's packages", 0.15)
        python = env_python(staging)
        backend_args = [] if backend == INDEX_BACKEND else ["--torch-backend", backend]
        runner.run([uv, "pip", "install", "--python", str(python),
                    "--constraint", str(constraints_file()), f"torch=={pins['torch']}",
                    *ENGINE_PACKAGES, *backend_args], "installing torch and the engine's packages")
        progress("Checking that the new engine starts", 0.85)
        lines = runner.run([str(python), "-c", _PROBE], "checking torch", env=child_env(python))
        probe = json.loads(next(ln for ln in reversed(lines) if ln.startswith("{")))
        if probe["accelerator"] is None and backend not in ("cpu", INDEX_BACKEND):
            raise PromptbankError(
                f"The installed torch {probe['torch']} finds no GPU on this machine, so it "
                "would be no faster than the CPU engine; nothing was changed.",
                hint="Check the GPU driver (nvidia-smi), or choose a build with "
                "--torch-backend (e.g. cu126).")
        _check_worker(python)
        record = {**{k: probe[k] for k in ("torch", "accelerator", "device_name")},
                  "backend": backend, "pins": pins,
                  "installed": datetime.now(UTC).isoformat(timespec="seconds")}
        (staging / MANIFEST).write_text(json.dumps(record, indent=1), encoding="utf-8")
        progress("Switching to the new engine", 0.95)
        _swap(staging, home / "env")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress("Installed", 1.0)
    return status(home)


def _check_worker(python: Path) -> None:
    """Start a worker from ``python`` the way the desktop will, read its ``hello`` and let it
    end with its input."""
    problem = ""
    try:
        done = subprocess.run([*module_command("engine.cli", python), "worker"], input=b"",
                              capture_output=True, env=child_env(python), timeout=300)
        first = done.stdout.splitlines()[:1]
        if done.returncode != 0 or not first or decode_event(first[0]).type != "hello":
            problem = done.stderr.decode(errors="replace").strip()[-400:] or "no hello"
    except (OSError, subprocess.TimeoutExpired, ProtocolError) as exc:
        problem = str(exc)
    if problem:
        raise PromptbankError(f"The new engine's worker did not start: {problem}",
                              hint="Nothing was changed; the CPU engine is still used.")


def _swap(staging: Path, target: Path) -> None:
    old = target.with_name("env.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def run_cli(argv: list[str], home: Path | None = None) -> int | None:
    """Run ``promptbank ARGV`` on the GPU engine if one is ready: its exit code, else None."""
    found = status(home)
    if not found.ready:
        return None
    assert found.python is not None
    proc = subprocess.Popen([*module_command("engine.cli", found.python), *argv],
                            env=child_env(found.python))
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # Ctrl-C reached the child too; it stops at a step boundary and says so


def remove(home: Path | None = None) -> bool:
    """Delete the GPU engine (the CPU engine is used again); False if none was installed."""
    home = home or engine_home()
    env = home / "env"
    existed = env.exists()
    for folder in (env, home / "env.new", home / "env.old"):
        shutil.rmtree(folder, ignore_errors=True)
    if env.exists():
        raise PromptbankError(f"The GPU engine in {env} could not be removed completely.",
                              hint="Close Promptbank (its worker may run from it) and retry.")
    return existed
