"""Training checkpoints: tensors in safetensors, the rest in JSON; never pickle.

A run's checkpoint holds its prompt parameters, optimiser state, step, data order, RNG state
and best tensor, so a resumed run ends exactly where an uninterrupted one does.

The JSON file is written last and names the tensor file's sha256, so a checkpoint is either
complete and consistent or refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.errors import PromptbankError
from engine.support.fileio import atomic_write_bytes, sha256_bytes

TENSORS = "state.safetensors"
STATE = "state.json"


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write a checkpoint atomically into ``folder`` (replacing the previous one)."""
    data = st_save({k: v.detach().cpu().clone() for k, v in tensors.items()})
    digest = atomic_write_bytes(Path(folder) / TENSORS, data)
    payload = json.dumps({**state, "tensors_sha256": digest}, sort_keys=True).encode()
    atomic_write_bytes(Path(folder) / STATE, payload)


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by ``save_checkpoint``; a missing or damaged one is refused."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE).read_text())
        data = (folder / TENSORS).read_bytes()
    except (OSError, ValueError) as exc:
        raise PromptbankError(f"The checkpoint in {folder} is missing or unreadable.",
                              hint="Start a new run instead.") from exc
    if sha256_bytes(data) != state.get("tensors_sha256"):
        raise PromptbankError(f"The checkpoint in {folder} is incomplete or was changed.",
                              hint="Start a new run instead.")
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
