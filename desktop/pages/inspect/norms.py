"""Per-position norms of a prompt file, read with numpy (no torch in the desktop)."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load as st_load

from engine.errors import PromptbankError


def position_norms(data: bytes) -> tuple[str, list[float]]:
    """(method, L2 norm of each virtual token) of a prompt file's bytes.

    A prefix's token vector is all its layers' keys and values at that position.
    """
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise PromptbankError(f"The prompt file could not be read ({exc}).",
                              hint="Restore it from a backup or retrain.") from exc
    if "prompt" in tensors:
        t = tensors["prompt"].astype(np.float32)
        return "prompt", [float(x) for x in np.linalg.norm(t, axis=1)]
    if "prefix" in tensors:
        t = tensors["prefix"].astype(np.float32)  # (layers, 2, kv_heads, n, head_dim)
        flat = np.moveaxis(t, 3, 0).reshape(t.shape[3], -1)
        return "prefix", [float(x) for x in np.linalg.norm(flat, axis=1)]
    raise PromptbankError("The prompt file holds no 'prompt' or 'prefix' tensor.",
                          hint="Restore it from a backup or retrain.")
