"""Training checkpoints: tensors in safetensors, the rest in JSON; never pickle.

A run's checkpoint holds its prompt parameters, optimiser state, step, data order, RNG state
and best tensor, so a resumed run ends exactly where an uninterrupted one does.

It is one file (the JSON state rides in the safetensors header), replaced by one rename: a
kill at any instant leaves the previous checkpoint or the new one, never a mix or neither.
Checkpoints of earlier releases (``state.safetensors`` beside a ``state.json`` naming its
sha256) are still read, and replaced by the one file at the next save.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.errors import PromptbankError
from engine.support.fileio import atomic_write_bytes, sha256_bytes

CHECKPOINT = "checkpoint.safetensors"
#: The two files of the earlier layout: tensors, then the state naming their sha256.
LEGACY_TENSORS, LEGACY_STATE = "state.safetensors", "state.json"
_DAMAGED = "Start a new run instead."


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write a checkpoint into ``folder`` with one atomic rename (replacing the previous)."""
    folder = Path(folder)
    for stale in folder.glob(f".{CHECKPOINT}.*.tmp"):  # left by a save that was killed
        stale.unlink(missing_ok=True)
    data = st_save({k: v.detach().cpu().clone() for k, v in tensors.items()},
                   metadata={"state": json.dumps(state, sort_keys=True)})
    atomic_write_bytes(folder / CHECKPOINT, data)
    for name in (LEGACY_STATE, LEGACY_TENSORS):  # the state first: a lone tensor file is inert
        (folder / name).unlink(missing_ok=True)


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint (whole or not) of either layout."""
    return (Path(folder) / CHECKPOINT).exists() or (Path(folder) / LEGACY_STATE).exists()


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by ``save_checkpoint``; a missing or damaged one is refused."""
    folder = Path(folder)
    path = folder / CHECKPOINT
    if not path.exists() and (folder / LEGACY_STATE).exists():
        return _load_legacy(folder)
    try:
        data = path.read_bytes()
        return st_load(data), _state_of(data)
    except (OSError, ValueError, KeyError, TypeError, struct.error, SafetensorError) as exc:
        raise PromptbankError(f"The checkpoint in {folder} is missing or unreadable.",
                              hint=_DAMAGED) from exc


def _state_of(data: bytes) -> dict:
    # The run's own file, so no size caps: a long run's data order can be megabytes.
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["state"])


def _load_legacy(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        state = json.loads((folder / LEGACY_STATE).read_text())
        data = (folder / LEGACY_TENSORS).read_bytes()
    except (OSError, ValueError) as exc:
        raise PromptbankError(f"The checkpoint in {folder} is missing or unreadable.",
                              hint=_DAMAGED) from exc
    if sha256_bytes(data) != state.get("tensors_sha256"):
        raise PromptbankError(f"The checkpoint in {folder} is incomplete or was changed.",
                              hint=_DAMAGED)
    return st_load(data), state


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state split into named tensors and JSON-friendly settings."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, slot in sd["state"].items():
        for key, value in slot.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      meta: dict) -> None:
    """Load what ``optimizer_tensors`` saved back into ``optimizer``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_state(folder: Path, tensors: dict[str, torch.Tensor], state: dict,
               optimizer: torch.optim.Optimizer) -> None:
    """A run's checkpoint: its tensors and state plus the optimiser's."""
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    save_checkpoint(folder, {**opt_tensors, **tensors}, {**state, "optimizer": opt_meta})


def restore_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """What ``save_state`` wrote (the optimiser's part is restored with ``restore_optimizer``)."""
    return load_checkpoint(folder)
