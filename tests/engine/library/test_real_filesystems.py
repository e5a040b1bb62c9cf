"""The library on real small and read-only filesystems (a tmpfs mounted by the test where the
machine allows it): a full disk says so and keeps what was there; a read-only library can
still be listed and read, and a change is refused with the reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import PromptbankError
from engine.library import Library
from tests.engine.library_helpers import prompt_bytes, snapshot, write_jsonl


def _mount(where: Path, options: str) -> None:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "none", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("this machine cannot mount a tmpfs here (it needs root or "
                    f"CAP_SYS_ADMIN): {done.stderr.strip()}")


@pytest.fixture
def mounted(tmp_path):
    """A fresh 2 MiB tmpfs, unmounted after the test."""
    where = tmp_path / "disk"
    _mount(where, "size=2m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_says_so_and_keeps_the_library(mounted):
    lib = Library(mounted / "lib")
    lib.create_task("t")
    lib.add_version("t", prompt_bytes(seed=1, task="t"))
    before = snapshot(lib)
    filler = mounted / "filler"
    with filler.open("wb") as fh:  # fill every block that is left
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    with pytest.raises(PromptbankError) as err:
        for seed in range(2, 40):
            lib.add_version("t", prompt_bytes(seed=seed, task="t"))
    text = str(err.value)
    assert ("full" in text or "No space left" in text) and "disk space" in text
    assert "damaged" not in text
    filler.unlink()
    reopened = Library(mounted / "lib")
    assert snapshot(reopened) == before
    assert reopened.add_version("t", prompt_bytes(seed=99, task="t")).number == 2


def test_a_read_only_library_lists_and_refuses_changes_with_the_reason(mounted, tmp_path,
                                                                       capsys):
    root = mounted / "lib"
    lib = Library(root)
    lib.create_task("sent", kind="classify", labels=["pos", "neg"],
                    data=write_jsonl(tmp_path / "d.jsonl",
                                     [{"input": f"x{i}", "output": "pos" if i % 2 else "neg"}
                                      for i in range(6)]))
    lib.add_version("sent", prompt_bytes(seed=1, task="sent"))
    lib.close()
    subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
    try:
        assert main(["--library", str(root), "--json", "task", "list"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert "sent" in json.dumps(listed)
        readonly = Library(root)
        assert readonly.unwritable and readonly.read_version_bytes(readonly.get_version("sent"))
        assert main(["--library", str(root), "task", "create", "new"]) == 2
        err = capsys.readouterr().err
        assert "is read-only here" in err and "damaged" not in err
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mounted)], check=False)
