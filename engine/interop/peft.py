"""PEFT adapter folders (PROMPT_TUNING and PREFIX_TUNING), both ways."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.errors import PromptbankError
from engine.interop.archive import json_file, read_capped
from engine.interop.common import (
    ImportReport,
    ImportTarget,
    add_imported,
    check_rows,
    load_version,
    model_heads,
)
from engine.library import Library, Version
from engine.methods import by_peft_type, get_method
from engine.prompts.soft_prompt import SoftPrompt
from engine.support.fileio import atomic_write_bytes


def peft_tensor(prompt: SoftPrompt) -> torch.Tensor:
    """Our tensor in PEFT's ``prompt_embeddings`` layout (one row per virtual token)."""
    return get_method(prompt.method).token_rows(prompt.tensor).contiguous().clone()


def export_peft(library: Library, version: Version, out: Path) -> Path:
    """Write a PEFT adapter folder (PROMPT_TUNING or PREFIX_TUNING) for a version."""
    prompt = load_version(library, version)
    g = prompt.geometry
    method = get_method(prompt.method)
    info = library.get_model(g.fingerprint) or {}
    config = {
        "task_type": "CAUSAL_LM", "peft_type": method.peft_type, "auto_mapping": None,
        "base_model_name_or_path": info.get("path") or info.get("name"), "revision": None,
        "inference_mode": True, "num_virtual_tokens": prompt.length,
        "num_transformer_submodules": 1, "num_layers": g.layers, "modules_to_save": None,
        **method.peft_config(g, model_heads(library, prompt)),
    }
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise PromptbankError(f"The folder {out} is not empty.",
                              hint="Choose a new or empty folder for the adapter.")
    weights = st_save({"prompt_embeddings": peft_tensor(prompt)},
                      metadata={"format": "pt", "promptbank_fingerprint": g.fingerprint})
    atomic_write_bytes(out / "adapter_model.safetensors", weights)
    atomic_write_bytes(out / "adapter_config.json", json.dumps(config, indent=2).encode())
    return out


def read_peft(folder: Path, model: ImportTarget, *,
              force: bool = False) -> tuple[str, torch.Tensor, list[str]]:
    """The method, our-layout tensor and notes of a PEFT prompt-learning adapter folder,
    refused when its config names another layer count, or (unless ``force``) another model."""
    folder = Path(folder)
    config_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise PromptbankError(f"{folder} is not a PEFT adapter folder.",
                              hint="It needs adapter_config.json and adapter_model.safetensors.")
    config = json_file(config_path)
    peft_type = config.get("peft_type")
    method = by_peft_type(peft_type) if isinstance(peft_type, str) else None
    if method is None:
        raise PromptbankError(f"{folder} is a {peft_type} adapter; only PROMPT_TUNING and "
                              "PREFIX_TUNING adapters are soft prompts.",
                              hint="Import a prompt-tuning or prefix-tuning adapter.")
    if config.get("prefix_projection"):
        raise PromptbankError(f"{folder} holds an un-folded prefix encoder (prefix_projection).",
                              hint="Re-save it with prefix_projection=False.")
    notes = _check_peft_model(config, model, folder, force)
    try:
        tensors = st_load(read_capped(weights_path))
    except SafetensorError as exc:
        raise PromptbankError(f"{weights_path} is damaged ({exc}).") from exc
    if "prompt_embeddings" not in tensors:
        raise PromptbankError(f"{weights_path} has no 'prompt_embeddings' tensor.")
    rows = tensors["prompt_embeddings"].float()
    check_rows(method, rows, model, str(weights_path))
    return method.name, method.from_token_rows(rows, model.geometry).contiguous(), notes


def _check_peft_model(config: dict, model: ImportTarget, folder: Path, force: bool) -> list[str]:
    """Refuse an adapter whose config names another layer count, or another base model
    unless ``force``; the notes say what was assumed."""
    layers = config.get("num_layers")
    if layers is not None and layers != model.geometry.layers:
        raise PromptbankError(
            f"{folder} is a PEFT adapter for a model of {layers} layers; the loaded model "
            f"({model.display_name}) has {model.geometry.layers}, so it cannot be used.",
            hint="Load the model it was trained for.")
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base.strip():
        return ["PEFT adapters carry no model fingerprint and this one names no base model; "
                "the prompt is assumed to be for the loaded model (same shape)."]
    if model.known_as(base):
        return [f"PEFT adapters carry no model fingerprint; this one names {base}, the loaded "
                "model's name, and its shape fits."]
    if not force:
        raise PromptbankError(
            f"{folder} is a PEFT adapter for {base}; the loaded model is "
            f"{model.display_name}.",
            hint="Load that model, or use --force if it is the same model under another name "
                 "(same size: results may be poor otherwise).")
    return [f"The adapter names {base}, not the loaded model {model.display_name}; imported "
            "with --force because its shape fits."]


def import_peft(library: Library, folder: Path, model: ImportTarget, *,
                task: str | None = None, force: bool = False) -> ImportReport:
    """Import a PEFT prompt/prefix-tuning adapter as a new version for the loaded model."""
    method, tensor, notes = read_peft(folder, model, force=force)
    name = task or Path(folder).resolve().name
    prompt = SoftPrompt(method, tensor, model.geometry, task=name, init="import:peft")
    report = ImportReport(notes=notes)
    add_imported(library, name, prompt, report, "a PEFT adapter")
    return report
