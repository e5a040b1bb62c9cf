"""Recognising and recovering from resource faults (out of memory) in one place. Torch-free
until memory is released."""

from __future__ import annotations

import gc

_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an accelerator or host out-of-memory failure."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _OOM_TEXT)


def release_memory() -> None:
    """Give back what a failed piece of work held: Python garbage, then the GPU's cached
    blocks, so the next request starts with the memory free."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
