"""Which format a path holds, and import or export by format name."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.library import EXPORT_FORMATS
from engine.errors import PromptbankError
from engine.interop.archive import open_zip
from engine.interop.common import ImportReport, ImportTarget
from engine.interop.files import export_safetensors, import_safetensors
from engine.interop.kobold import export_kobold, import_kobold
from engine.interop.openai_jsonl import export_openai_jsonl
from engine.interop.pack import export_pack, import_pack
from engine.interop.peft import export_peft, import_peft
from engine.interop.vllm import export_vllm
from engine.library import Library

if TYPE_CHECKING:
    from engine.model.chat import Chat

#: What ``import`` reads.
FORMATS = ("peft", "kobold", "pack", "safetensors")


def detect_import_format(path: Path) -> str:
    """peft (a folder), pack, kobold (a zip with tensor.npy) or safetensors."""
    path = Path(path)
    if path.is_dir():
        return "peft"
    if not path.exists():
        raise PromptbankError(f"{path} does not exist.", hint="Check the path.")
    if path.suffix.lower() == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        with open_zip(path) as zf:
            names = set(zf.namelist())
        if "manifest.json" in names:
            return "pack"
        if "tensor.npy" in names:
            return "kobold"
    if path.suffix.lower() in (".pbpack", ".zip"):
        raise PromptbankError(f"{path} is neither a prompt pack nor a KoboldAI soft prompt.")
    return "safetensors"


def import_any(library: Library, path: Path, model: ImportTarget, *, task: str | None = None,
               force: bool = False) -> tuple[str, ImportReport]:
    """Import whatever ``path`` holds; returns the detected format and the report."""
    fmt = detect_import_format(Path(path))
    if fmt == "pack":
        return fmt, import_pack(library, path, model, force=force)
    if fmt == "kobold":
        return fmt, import_kobold(library, path, model, task=task)
    if fmt == "peft":
        return fmt, import_peft(library, path, model, task=task, force=force)
    return fmt, import_safetensors(library, path, model, task=task, force=force)


def export_version(library: Library, task: str, fmt: str, out: Path, *,
                   version: int | None = None, include_eval: bool = True,
                   split: str = "train", chat: Chat | None = None) -> Path:
    """Export one task's version (or, for packs, the task with all its versions; for
    openai-jsonl, the task's ``split`` rows); vllm needs the loaded model's ``chat``."""
    if fmt not in EXPORT_FORMATS:
        raise PromptbankError(f"Unknown export format '{fmt}'.",
                              hint=f"Use one of: {', '.join(EXPORT_FORMATS)}.")
    if fmt == "openai-jsonl":
        return export_openai_jsonl(library, task, out, split=split)
    if fmt == "pack":
        return export_pack(library, [task], out, include_eval=include_eval, version=version)
    chosen = library.get_version(task, version)
    if fmt == "peft":
        return export_peft(library, chosen, out)
    if fmt == "kobold":
        return export_kobold(library, chosen, out, task_name=task)
    if fmt == "vllm":
        if chat is None:
            raise PromptbankError("A vLLM export needs the loaded model's chat format.",
                                  hint="Export it with the engine running (the CLI loads it).")
        return export_vllm(library, chosen, out, chat)
    return export_safetensors(library, chosen, out)
