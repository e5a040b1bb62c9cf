"""vLLM's ``prompt_embeds`` input for an input-level (``prompt``) version.

vLLM serves soft prompts only as ready-made input embeddings (its prompt adapters were
removed in 2025). The export holds the virtual tokens and the text the engine writes around
an input, so a client builds the very sequence the engine runs: the virtual tokens, then the
model's own embeddings of ``before + input + after`` tokenised as one string without special
tokens. Deep prefixes are per-layer keys and values, which vLLM has no input for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save as st_save

from engine.errors import PromptbankError
from engine.interop.common import load_version
from engine.library import Library, Version
from engine.methods import get_method
from engine.support.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from engine.model.chat import Chat

FORMAT = "promptbank-vllm/1"
TENSOR_FILE, PLACEMENT_FILE = "virtual_tokens.safetensors", "placement.json"
RULE = ("prompt_embeds = concat(virtual_tokens, embed(tokenize(before + input + after, "
        "add_special_tokens=False))), where embed is the model's input embedding layer")


def export_vllm(library: Library, version: Version, out: Path, chat: Chat) -> Path:
    """Write ``out/`` with the virtual tokens and ``placement.json`` (the text around an
    input, the stop text and the rule); a prefix version is refused with the reason."""
    prompt = load_version(library, version)
    if not get_method(prompt.method).input_embeddings:
        raise PromptbankError(
            f"vLLM takes soft prompts only as input embeddings (prompt_embeds); this version "
            f"is a {prompt.method}, whose keys and values sit in every layer, and vLLM has no "
            "input for those.",
            hint="Train a version with --method prompt to serve it on vLLM, or serve this one "
            "with `promptbank serve`.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PromptbankError(f"The folder {out} is not empty.",
                              hint="Choose a new or empty folder for the export.")
    task = library.get_task(prompt.task) if prompt.task else None
    before, after = chat.input_frame(task.input_template if task else None)
    info = library.get_model(prompt.geometry.fingerprint) or {}
    placement = {
        "format": FORMAT, "task": prompt.task, "version": version.number,
        "model": info.get("name", ""), "model_path": info.get("path", ""),
        "fingerprint": prompt.geometry.fingerprint, "hidden_size": prompt.geometry.hidden_size,
        "virtual_tokens": prompt.length, "before": before, "after": after,
        "stop": chat.end_of_turn, "rule": RULE,
    }
    tensor = st_save({"virtual_tokens": prompt.tensor.float().contiguous()},
                     metadata={"format": FORMAT, "fingerprint": prompt.geometry.fingerprint})
    atomic_write_bytes(out / TENSOR_FILE, tensor)
    atomic_write_bytes(out / PLACEMENT_FILE, json.dumps(placement, indent=2).encode())
    return out
