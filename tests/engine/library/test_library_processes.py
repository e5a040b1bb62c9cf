"""Two processes writing one library at once; a process killed while writing a version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.library import Library
from engine.library.headers import read_header_metadata

ROOT = Path(__file__).resolve().parents[3]

# The writers use only the torch-free library, so they start fast; prompt files are built
# from one template made in the test (the library reads only the safetensors header).
WRITER = textwrap.dedent("""
    import sys
    from engine.library import Library
    root, who, count, template = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    data = open(template, "rb").read()
    lib = Library(root)
    for i in range(count):
        run = lib.create_run("shared", {"who": who, "i": i})
        lib.log_metrics(run.id, 1, {"loss": float(i)})
        version = lib.add_version("shared", data + who.encode() + bytes([i % 256]), run_id=run.id)
        lib.finish_run(run.id, "done", version_id=version.id)
        print(version.number, flush=True)
""")


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def template(tmp_path: Path) -> str:
    from tests.engine.library_helpers import prompt_bytes

    path = tmp_path / "template.safetensors"
    path.write_bytes(prompt_bytes())
    return str(path)


def check_library(root: Path) -> Library:
    """The library opens cleanly, is consistent, and every version's file is whole."""
    lib = Library(root)
    assert lib.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert lib.db.execute("PRAGMA foreign_key_check").fetchall() == []
    for version in lib.list_versions("shared"):
        data = lib.read_version_bytes(version)  # raises if missing or not matching its sha256
        assert read_header_metadata(data)["format"] == "promptbank"
    return lib


def test_two_processes_write_one_library(tmp_path):
    root = tmp_path / "lib"
    Library(root).create_task("shared")
    path = template(tmp_path)
    procs = [spawn(str(root), who, "12", path) for who in ("a", "b")]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    lib = check_library(root)
    numbers = [v.number for v in lib.list_versions("shared")]
    assert numbers == list(range(1, 25))
    runs = lib.list_runs("shared")
    assert len(runs) == 24 and all(r.status == "done" and r.version_id for r in runs)
    assert sorted(r.config["who"] for r in runs).count("a") == 12


def test_killed_while_writing_a_version(tmp_path):
    root = tmp_path / "lib"
    Library(root).create_task("shared")
    proc = spawn(str(root), "k", "100000", template(tmp_path))
    assert proc.stdout is not None
    for _ in range(5):  # let it get well into its loop, then kill it mid-write
        assert proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    lib = check_library(root)
    versions = lib.list_versions("shared")
    assert [v.number for v in versions] == list(range(1, len(versions) + 1))
    assert len(versions) >= 5
    # A file written but never committed may remain; no committed version lacks its file.
    files = {p.name for p in (root / "prompts").iterdir() if not p.name.startswith(".")}
    assert {Path(v.path).name for v in versions} <= files
    assert len(files - {Path(v.path).name for v in versions}) <= 1
    lib.add_version("shared", (root / versions[-1].path).read_bytes())  # and it carries on
