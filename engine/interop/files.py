"""A prompt version as a plain Promptbank safetensors file."""

from __future__ import annotations

from pathlib import Path

from engine.interop.archive import read_capped
from engine.interop.common import ImportReport, ImportTarget, add_imported, check_prompt
from engine.library import Library, Version
from engine.prompts.soft_prompt import SoftPrompt
from engine.support.fileio import atomic_write_bytes


def export_safetensors(library: Library, version: Version, out: Path) -> Path:
    """Copy a version's checked prompt file to ``out``."""
    out = Path(out)
    if out.is_dir():
        out = out / f"{Path(version.path).stem}.safetensors"
    atomic_write_bytes(out, library.read_version_bytes(version))
    return out


def import_safetensors(library: Library, path: Path, model: ImportTarget, *,
                       task: str | None = None, force: bool = False) -> ImportReport:
    """Import a Promptbank prompt file as a new version (its task is created if absent)."""
    data = read_capped(Path(path))
    prompt = SoftPrompt.from_bytes(data, source=str(path))
    check_prompt(prompt, model, str(path), force=force)
    report = ImportReport()
    if prompt.geometry.fingerprint != model.geometry.fingerprint:
        report.notes.append("The prompt was trained on another model of the same size.")
    add_imported(library, task or prompt.task or Path(path).stem, prompt, report, Path(path).name)
    return report
