"""KoboldAI soft-prompt zips (``tensor.npy`` and ``meta.json``), input-level prompts only."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from engine.errors import PromptbankError
from engine.interop.archive import checked_members, json_member, open_zip, read_member
from engine.interop.common import ImportReport, ImportTarget, add_imported, check_rows, load_version
from engine.library import Library, Version
from engine.methods import get_method
from engine.prompts.soft_prompt import SoftPrompt
from engine.support.fileio import atomic_write_bytes


def export_kobold(library: Library, version: Version, out: Path, *, task_name: str = "") -> Path:
    """Write a KoboldAI soft-prompt zip (``tensor.npy`` + ``meta.json``); method prompt only."""
    prompt = load_version(library, version)
    if not get_method(prompt.method).input_embeddings:
        raise PromptbankError(
            f"KoboldAI soft prompts hold input embeddings only; this version is a "
            f"{prompt.method} (per-layer keys/values), which KoboldAI cannot use.",
            hint="Export it as peft, pack or safetensors instead.")
    info = library.get_model(prompt.geometry.fingerprint) or {}
    meta = {"name": task_name or prompt.task or "soft prompt", "author": "Promptbank",
            "supported": [info.get("name", "")],
            "description": f"Version {version.number} exported by Promptbank."}
    buffer = io.BytesIO()
    np.save(buffer, prompt.tensor.numpy().astype(np.float32), allow_pickle=False)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tensor.npy", buffer.getvalue())
        zf.writestr("meta.json", json.dumps(meta, indent=2))
    atomic_write_bytes(Path(out), archive.getvalue())
    return Path(out)


def read_npy(data: bytes, what: str) -> np.ndarray:
    """An ``.npy`` array whose header is checked first: the shape it declares must be what
    its bytes hold, so a header that claims 100,000,000 rows is refused before numpy would
    allocate for them."""
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(buffer)
    except (ValueError, OSError, EOFError) as exc:
        raise PromptbankError(f"{what} is damaged ({exc}).") from exc
    if dtype.hasobject or dtype.kind not in "fiu":
        raise PromptbankError(f"{what} does not hold numbers.")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared != len(data) - buffer.tell():
        raise PromptbankError(f"{what} declares a {'×'.join(map(str, shape))} array of "
                              f"{declared:,} bytes but holds {len(data) - buffer.tell():,}.",
                              hint="The file is damaged or not a soft prompt.")
    return np.frombuffer(data, dtype=dtype, offset=buffer.tell()).reshape(
        shape, order="F" if fortran else "C")


def import_kobold(library: Library, path: Path, model: ImportTarget, *,
                  task: str | None = None) -> ImportReport:
    """Import a KoboldAI soft-prompt zip as a prompt version for the loaded model."""
    with open_zip(Path(path)) as zf:
        members = checked_members(zf, Path(path))
        if "tensor.npy" not in members:
            raise PromptbankError(f"{path} has no tensor.npy, so it is not a KoboldAI soft prompt.")
        meta = {}
        if "meta.json" in members:
            meta = json_member(zf, "meta.json", Path(path))
        array = read_npy(read_member(zf, members["tensor.npy"]), f"The tensor.npy in {path}")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    check_rows(get_method("prompt"), tensor, model, f"The tensor.npy in {path}")
    name = task or str(meta.get("name") or "").strip() or Path(path).stem
    prompt = SoftPrompt("prompt", tensor, model.geometry, task=name, init="import:kobold",
                        extra={"kobold_description": str(meta.get("description", ""))[:500]})
    report = ImportReport(notes=["KoboldAI soft prompts carry no model fingerprint; the prompt "
                                 "is assumed to be for the loaded model (same hidden size)."])
    add_imported(library, name.replace("/", "-"), prompt, report, "a KoboldAI soft prompt")
    return report
