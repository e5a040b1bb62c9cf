"""Per-position norms of a prompt file, read with numpy (no torch in the desktop)."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load as st_load

from engine.api.session import MethodInfo
from engine.errors import PromptbankError
from engine.library.headers import header_int, read_header_metadata

_DAMAGED = "Restore it from a backup or retrain."


def position_norms(data: bytes, methods: list[MethodInfo]) -> tuple[str, list[float]]:
    """(method, L2 norm of each virtual token) of a prompt file's bytes.

    The token axis comes from the file's header, or for files written before it did, from the
    engine's description of the method. A prefix's token vector is all its layers' keys and
    values at that position.
    """
    meta = read_header_metadata(data, source="The prompt file")
    method = meta.get("method", "")
    info = next((m for m in methods if m.name == method), None)
    axis = header_int(meta, "token_axis", source="The prompt file",
                      default=info.token_axis if info else -1)
    if axis < 0:
        raise PromptbankError(f"Where a '{method}' prompt keeps its tokens is known once the "
                              "engine has started.",
                              hint="Wait until the status bar shows the model, then select "
                                   "the version again.")
    try:
        tensor = st_load(data)[info.tensor_key if info else method].astype(np.float32)
    except Exception as exc:  # a missing key, or safetensors' own error types
        raise PromptbankError(f"The prompt file could not be read ({exc}).",
                              hint=_DAMAGED) from exc
    if not 0 <= axis < tensor.ndim:
        raise PromptbankError(f"The prompt file's token axis {axis} does not fit its tensor "
                              f"of shape {tensor.shape}.", hint=_DAMAGED)
    flat = np.moveaxis(tensor, axis, 0).reshape(tensor.shape[axis], -1)
    return method, [float(x) for x in np.linalg.norm(flat, axis=1)]
