"""A checkpoint is replaced as a unit: a process killed at any instant while saving leaves
the previous checkpoint or the new one, never a mix of the two or neither."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine.support.fileio import sha256_bytes
from engine.training.checkpointing import (
    CHECKPOINT,
    LEGACY_STATE,
    LEGACY_TENSORS,
    load_checkpoint,
    save_checkpoint,
)

#: Saves checkpoint k (tensor filled with k, state naming k) in a loop as fast as it can,
#: saying when the first save is done (so the kill falls among saves, not the imports).
WRITER = """
import sys, torch
from engine.training.checkpointing import save_checkpoint
k = int(sys.argv[2])
while True:
    k += 1
    save_checkpoint(sys.argv[1], {"x": torch.full((256, 64), float(k))}, {"step": k})
    if k == int(sys.argv[2]) + 1:
        print("saving", flush=True)
"""


def _consistent(folder) -> int:
    tensors, state = load_checkpoint(folder)
    assert torch.equal(tensors["x"], torch.full((256, 64), float(state["step"])))
    return state["step"]


def test_a_kill_at_any_instant_leaves_a_whole_checkpoint(tmp_path):
    save_checkpoint(tmp_path, {"x": torch.full((256, 64), 0.0)}, {"step": 0})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    last = 0
    for delay in (0.0, 0.013, 0.029, 0.041, 0.057, 0.071, 0.089, 0.11):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(last)],
                                  env=env, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "saving\n"
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        step = _consistent(tmp_path)
        assert step >= last  # never an older checkpoint than the last one that was whole
        last = step
    assert last >= 8  # every writer got through a save before it was killed
    save_checkpoint(tmp_path, {"x": torch.full((256, 64), float(last + 1))}, {"step": last + 1})
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # killed saves' temp files too


def test_a_save_interrupted_before_its_rename_keeps_the_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"x": torch.full((256, 64), 1.0)}, {"step": 1})

    def killed(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, {"x": torch.full((256, 64), 2.0)}, {"step": 2})
    monkeypatch.undo()
    assert _consistent(tmp_path) == 1


def test_an_earlier_releases_two_file_checkpoint_is_read_then_replaced(tmp_path):
    from safetensors.torch import save as st_save

    data = st_save({"x": torch.full((256, 64), 3.0)})
    (tmp_path / LEGACY_TENSORS).write_bytes(data)
    (tmp_path / LEGACY_STATE).write_text(json.dumps({"step": 3,
                                                     "tensors_sha256": sha256_bytes(data)}))
    assert _consistent(tmp_path) == 3
    save_checkpoint(tmp_path, {"x": torch.full((256, 64), 4.0)}, {"step": 4})
    assert _consistent(tmp_path) == 4
    assert not (tmp_path / LEGACY_STATE).exists() and not (tmp_path / LEGACY_TENSORS).exists()
