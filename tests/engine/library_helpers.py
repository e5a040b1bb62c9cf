"""Helpers shared by the library, interop and data tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

TINY_GEOMETRY = dict(fingerprint="f" * 32, hidden_size=32, layers=2, kv_heads=2, head_dim=8)


def snapshot(library) -> dict[str, str]:
    """Every file (by sha256) and folder of a library, after folding the WAL into the database.

    The ``-shm`` index is shared memory, not content, so it is left out.
    """
    library.checkpoint()
    out: dict[str, str] = {}
    for path in sorted(Path(library.root).rglob("*")):
        rel = str(path.relative_to(library.root))
        if rel.endswith("-shm"):
            continue
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def prompt_bytes(method: str = "prompt", length: int = 4, *, task: str = "t", seed: int = 0,
                 geometry=None) -> bytes:
    """A valid prompt file for the tiny model's geometry (or ``geometry``)."""
    import torch

    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape

    geometry = geometry or ModelGeometry(**TINY_GEOMETRY)
    gen = torch.Generator().manual_seed(seed)
    tensor = torch.randn(prompt_shape(method, length, geometry), generator=gen)
    return SoftPrompt(method, tensor, geometry, task=task, init="random").to_bytes()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
