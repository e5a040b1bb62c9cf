"""The host's board: a worker's post is read back, while a stale, dead or damaged post is
skipped, and a withdrawn one is gone."""

from __future__ import annotations

import json
import os
import subprocess

from engine.api import board
from engine.api.session import DeviceJob, DeviceLine


def test_posts_are_read_back_and_stale_dead_or_damaged_ones_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv(board.BOARD_ENV, str(tmp_path / "board"))
    line = DeviceLine(device="cuda:0", gpu="0", jobs=[DeviceJob(task="sent", state="running")])
    board.post(tmp_path / "host" / "abcdef1234" / "library", line)
    [mine] = board.read_board()
    assert (mine.pid, mine.line, board.library_label(mine.library)) == (os.getpid(), line,
                                                                         "abcdef12")
    assert (tmp_path / "board" / f"{os.getpid()}.json").stat().st_mode & 0o777 == 0o644
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = {**mine.to_data(), "pid": gone.pid}
    (tmp_path / "board" / f"{gone.pid}.json").write_text(json.dumps(dead))
    stale = {**mine.to_data(), "pid": 1, "posted": mine.posted - board.STALE_S - 1}
    (tmp_path / "board" / "1.json").write_text(json.dumps(stale))
    (tmp_path / "board" / "2.json").write_text("{not json")
    (tmp_path / "board" / "3.json").write_text(json.dumps({"pid": "three"}))
    assert [p.pid for p in board.read_board()] == [os.getpid()]
    board.withdraw()
    assert board.read_board() == []
