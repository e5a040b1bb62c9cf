"""Smoke test of the built bundle (``make package-test``): the installed app as a user runs it.

Usage: ``python packaging/smoke_test.py dist/promptbank``. Everything runs the bundle's own
program in a fresh library, cache and settings folder, offscreen: ``--version``, ``model info
--json`` (the pre-converted model, no conversion, and the fingerprint the example prompts were
trained on), the desktop up to its main window with its engine, a short training job
through the bundled worker on the embedded model, and the GPU engine installed with the CPU
build of torch (this downloads packages) with the desktop's worker started from it. Prints
each check and its time.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import __version__  # noqa: E402
from engine.server.client import Client  # noqa: E402


class SmokeTest:
    """Runs the bundle's program with an isolated home; each check raises on a wrong result."""

    def __init__(self, bundle: Path, scratch: Path) -> None:
        self.program = bundle / ("promptbank.exe" if os.name == "nt" else "promptbank")
        if not self.program.is_file():
            raise SystemExit(f"{self.program} does not exist: run `make package` first.")
        self.library = scratch / "library"
        self.cache = scratch / "cache"
        self.env = {**os.environ, "PROMPTBANK_HOME": str(self.library),
                    "PROMPTBANK_CACHE": str(self.cache),
                    "PROMPTBANK_ENGINE_HOME": str(scratch / "engine"),
                    "XDG_CONFIG_HOME": str(scratch / "config"),
                    "QT_QPA_PLATFORM": "offscreen"}
        for key in ("PYTHONPATH", "PROMPTBANK_RESOURCES", "PROMPTBANK_MODEL"):
            self.env.pop(key, None)

    def run(self, *args: str, timeout: float = 300) -> tuple[str, float]:
        """Run the program; its stdout and the seconds it took (a failure stops the test)."""
        started = time.perf_counter()
        done = subprocess.run([str(self.program), *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise AssertionError(f"`promptbank {' '.join(args)}` exited {done.returncode}: "
                                 f"{done.stderr.strip()[-2000:]}")
        return done.stdout, seconds

    def version(self) -> str:
        out, seconds = self.run("--version")
        assert out.strip() == f"promptbank {__version__}", out
        return f"{out.strip()} ({seconds:.1f} s)"

    def model_info(self) -> str:
        out, seconds = self.run("--device", "cpu", "model", "info", "--json")
        info = json.loads(out)
        bundle = self.program.parent.resolve()
        assert info["source"] == "default" and info["name"] == "SmolLM2-135M-Instruct", info
        assert Path(info["path"]).resolve().is_relative_to(bundle), info["path"]
        assert not (self.cache / "models").exists(), "the model was converted at run time"
        shipped = example_fingerprint(ROOT / "resources" / "examples")
        assert info["fingerprint"] == shipped, (info["fingerprint"], shipped)
        return (f"{info['name']} from the bundle, fingerprint {info['fingerprint'][:12]}… "
                f"= the example prompts', loaded in {info['load_seconds']:.1f} s "
                f"({seconds:.1f} s with start-up)")

    def desktop(self) -> str:
        out, seconds = self.run("gui", "--examples", "--check", "--device", "cpu")
        shown = json.loads(out.strip().splitlines()[-1])
        assert shown["visible"] and shown["window"] == "Promptbank", shown
        assert shown["model"] == "SmolLM2-135M-Instruct" and not shown["gpu_engine"], shown
        assert shown["tasks"] >= 3, shown  # the example library was installed
        return (f"main window shown, engine ready with {shown['model']}, {shown['tasks']} "
                f"example tasks, in {seconds:.1f} s")

    def training(self) -> str:
        started = time.perf_counter()
        argv = [str(self.program), "--model", "default", "--device", "cpu", "--library",
                str(self.library), "worker"]
        client = Client(argv, env=self.env, timeout=300)
        client.launch()
        with client:
            handle = client.request("train", {"task": "sentiment", "config": {
                "method": "prompt", "length": 4, "steps": 3, "batch_size": 4,
                "eval_every": 0, "seed": 0}})
            steps = [e.data for e in handle if e.type == "progress" and
                     e.data.get("kind") == "step"]
            result = handle.finished.data if handle.finished else {}
            assert handle.finished.type == "result", result
        assert result["status"] == "done" and result["version"] == 2, result
        assert [s["step"] for s in steps] == [1, 2, 3], steps
        out, _ = self.run("--json", "versions", "sentiment")
        assert [v["number"] for v in json.loads(out)["versions"]] == [1, 2], out
        return (f"3 steps through the bundled worker, loss {steps[-1]['loss']:.2f}, "
                f"version 2 saved, in {time.perf_counter() - started:.1f} s")

    def gpu_engine(self) -> str:
        """Install the engine environment (CPU build: no GPU here), then start the desktop on it."""
        backend = "cpu"
        for folder in os.environ.get("PIP_FIND_LINKS", "").split():
            if any(Path(folder).glob("torch-*+cpu-*.whl")):  # a local wheel folder is set up
                self.env["UV_FIND_LINKS"], backend = folder, "index"
        _, seconds = self.run("engine", "install", "--torch-backend", backend, timeout=1800)
        out, _ = self.run("--json", "engine", "status")
        status = json.loads(out)
        assert status["state"] == "ready" and "+cpu" in status["torch"], status
        out, started = self.run("gui", "--check", "--device", "cpu")
        shown = json.loads(out.strip().splitlines()[-1])
        assert shown["gpu_engine"] and shown["model"] == "SmolLM2-135M-Instruct", shown
        self.run("engine", "remove")
        return (f"installed ({backend}) in {seconds:.0f} s; the desktop ran its worker from it "
                f"with the bundled model in {started:.1f} s; removed")


def example_fingerprint(examples: Path) -> str:
    """The model fingerprint in the header of the first shipped example prompt."""
    path = next(iter(sorted((examples / "prompts").glob("*.safetensors"))))
    with path.open("rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        return json.loads(fh.read(size))["__metadata__"]["model_fingerprint"]


def main(argv: list[str]) -> int:
    """Run every check against the bundle folder ``argv[0]``."""
    bundle = Path(argv[0] if argv else "dist/promptbank").resolve()
    with tempfile.TemporaryDirectory(prefix="promptbank-smoke-") as scratch:
        test = SmokeTest(bundle, Path(scratch))
        for name in ("version", "model_info", "desktop", "training", "gpu_engine"):
            print(f"{name:<11} {getattr(test, name)()}", flush=True)
    print("bundle smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
