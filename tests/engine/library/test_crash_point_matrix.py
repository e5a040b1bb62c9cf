"""The crash-point matrix: a training run, a continue and an import, each killed (SIGKILL) at
every fsync, rename and catalogue commit it passes in turn. After each kill the library opens
whole: earlier versions intact, no duplicate or missing version numbers, `library check`
clean, and the run finished, failed with its reason, or resumable to exactly one new version.

Each killed command runs in a process forked from a server that has already imported the
engine, so a point costs a fraction of a second rather than a fresh interpreter.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import pytest

from engine.cli import main
from engine.library import Library
from engine.library.check import check_library
from engine.support.crash import CRASH_AT_ENV
from tests.engine.train_helpers import POSITIVE, make_library, sentiment_rows, write_jsonl

pytestmark = pytest.mark.slow
TRAIN = ["--method", "prompt", "--length", "4", "--init", "random", "--steps", "2",
         "--batch-size", "4", "--eval-every", "0", "--checkpoint-every", "1"]


def _run(argv: list[str], crash_at: int) -> None:
    """In the forked child: the CLI, killed at crash point ``crash_at``."""
    os.environ[CRASH_AT_ENV] = str(crash_at)
    os._exit(main(argv))


@pytest.fixture(scope="module")
def forked():
    """A process context whose children start from a server with the engine imported."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["engine.cli", "engine.training.job", "torch",
                                    "transformers"])
    return context


@pytest.fixture(scope="module")
def template(tmp_path_factory, tiny_model_dir):
    """A library with one trained version of 'sentiment', a pack of it and new data."""
    root = tmp_path_factory.mktemp("crash-template")
    make_library(root).close()
    base = ["--library", str(root / "lib"), "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*base, "train", "sentiment", *TRAIN]) == 0
    assert main([*base, "export", "sentiment", "--format", "pack",
                 "--out", str(root / "sentiment.pbpack")]) == 0
    write_jsonl(root / "more.jsonl", [(f"{t} again", "positive") for t in POSITIVE] * 2
                + sentiment_rows(1))
    # For the import: the same library with the task renamed, so the pack makes a new task.
    shutil.copytree(root / "lib", root / "renamed")
    renamed = Library(root / "renamed")
    renamed.rename_task("sentiment", "older")
    renamed.close()
    return root, base


def _versions(library: Library) -> dict[tuple[str, int], str]:
    return {(task.name, v.number): v.sha256 for task in library.list_tasks()
            for v in library.list_versions(task.name)}


def _assert_whole(root: Path, before: dict[tuple[str, int], str]) -> Library:
    library = Library(root)
    after = _versions(library)
    assert {key: after.get(key) for key in before} == before  # earlier versions intact
    for task in library.list_tasks():
        numbers = [v.number for v in library.list_versions(task.name)]
        assert numbers == list(range(1, len(numbers) + 1)), (task.name, numbers)
        for version in library.list_versions(task.name):
            library.read_version_bytes(version)  # present and matching its checksum
    report = check_library(library)
    assert report.ok, report.to_dict()
    return library


def _matrix(forked, template, tmp_path, command: list[str], resume: bool,
            folder: str = "lib") -> int:
    """Run ``command`` on copies of the template's ``folder`` killed at point 1, 2, … until it
    completes (two points at a time, each child on one thread, so the two cores share the
    work); check the library after each kill. The number of points passed."""
    source, base = template
    before = _versions(Library(source / folder, read_only=True))
    point = 0
    while True:
        started = []
        for n in (point + 1, point + 2):
            lib = tmp_path / f"point-{n}"
            shutil.copytree(source / folder, lib)
            argv = [*base, *command]
            argv[argv.index("--library") + 1] = str(lib)
            child = forked.Process(target=_run, args=(["--threads", "1", *argv], n))
            child.start()
            started.append((n, lib, argv, child))
        for n, lib, argv, child in started:
            child.join(300)
            if child.exitcode == 0:
                library = _assert_whole(lib, before)
                assert len(_versions(library)) == len(before) + 1
                return n - 1
            _check_killed(n, lib, argv, child.exitcode, before, resume)
        point += 2


def _check_killed(point: int, lib: Path, argv: list[str], exitcode: int | None,
                  before: dict, resume: bool) -> None:
    """The library a kill at ``point`` left: whole, and its run finished, failed with a reason
    or (``resume``) resumable to exactly one new version."""
    assert exitcode == -signal.SIGKILL, f"point {point}: exit {exitcode}"
    library = _assert_whole(lib, before)
    made = len(_versions(library)) - len(before)
    assert made in (0, 1), f"point {point}: {made} new versions"
    for run in library.list_runs():
        assert run.status in ("done", "failed", "running"), run
        if run.status == "failed":
            assert run.summary.get("error"), run
        if resume and made == 0 and run.status == "running":
            assert main([*argv, "--resume", str(run.id)]) == 0, f"point {point}"
            resumed = _assert_whole(lib, before)
            assert len(_versions(resumed)) == len(before) + 1, f"point {point}"
    shutil.rmtree(lib)


def test_a_training_run_killed_at_any_point(forked, template, tmp_path):
    points = _matrix(forked, template, tmp_path, ["train", "sentiment", *TRAIN], resume=True)
    assert points >= 10  # checkpoints, metrics, the version file and its commit


def test_a_continue_killed_at_any_point(forked, template, tmp_path):
    source, _ = template
    command = ["continue", "sentiment", "--data", str(source / "more.jsonl"), "--steps", "2"]
    assert _matrix(forked, template, tmp_path, command, resume=False) >= 6


def test_an_import_killed_at_any_point(forked, template, tmp_path):
    source, _ = template
    command = ["import", str(source / "sentiment.pbpack")]
    assert _matrix(forked, template, tmp_path, command, resume=False, folder="renamed") >= 4
