"""What every import and export shares: the target model, the report, checks and capped reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import torch

from engine.errors import PromptbankError
from engine.library import Library, Version
from engine.methods.base import PromptMethod
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, check_length

if TYPE_CHECKING:
    from engine.model.host import ModelHost


@dataclass(frozen=True)
class ImportTarget:
    """The loaded model as imports check against it: its geometry, its context length, and
    the names a PEFT adapter may give it as its base model."""

    geometry: ModelGeometry
    context: int
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, host: ModelHost) -> ImportTarget:
        """The target of a loaded ``ModelHost``."""
        names = (host.name, str(host.folder), str(getattr(host.config, "_name_or_path", "")))
        return cls(ModelGeometry.of(host), host.max_positions, tuple(n for n in names if n))

    def known_as(self, name: str) -> bool:
        """Whether ``name`` (a hub id or a path) names this model: the last parts match."""
        return _last_part(name) in {_last_part(n) for n in self.names}

    @property
    def display_name(self) -> str:
        """The name messages give the loaded model."""
        return self.names[0] if self.names else "the loaded model"


def _last_part(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/").rstrip("/")).name.lower()


@dataclass
class ImportReport:
    """What an import did: tasks/versions added, renamed on conflict, or skipped (and why)."""

    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def load_version(library: Library, version: Version) -> SoftPrompt:
    """A version's SoftPrompt, its file checked against the catalogue's checksum."""
    data = library.read_version_bytes(version)
    return SoftPrompt.from_bytes(data, source=str(library.version_path(version)))


def model_heads(library: Library, prompt: SoftPrompt) -> int:
    """The attention heads of the prompt's model, as the catalogue recorded them."""
    info = library.get_model(prompt.geometry.fingerprint) or {}
    return int(info.get("heads") or prompt.geometry.hidden_size // prompt.geometry.head_dim)


def check_prompt(prompt: SoftPrompt, model: ImportTarget, source: str, *,
                  force: bool = False) -> None:
    """Refuse a prompt the loaded model cannot serve: another geometry (another model with
    ``force``), or a length that leaves no room for data in its context."""
    prompt.check_fits(model.geometry, force=force)
    check_length(prompt.length, model.context, source=source)


def add_imported(library: Library, task: str, prompt: SoftPrompt, report: ImportReport,
                  source: str) -> None:
    """Add ``prompt`` as a new version of ``task`` (created if absent), unless already there."""
    data = prompt.to_bytes()
    names = {t.name for t in library.list_tasks()}
    with library.transaction():
        if task not in names:
            library.create_task(task, description=f"Imported from {source}")
        if any(_same_prompt(library, v, prompt) for v in library.list_versions(task)):
            report.skipped.append(f"{task}: this prompt is already in the library")
            return
        version = library.add_version(task, data)
    report.added.append(f"{task} v{version.number}")


def _same_prompt(library: Library, version: Version, prompt: SoftPrompt) -> bool:
    """Whether a version holds exactly this tensor (files differ in their timestamps)."""
    if (version.method, version.length) != (prompt.method, prompt.length):
        return False
    return torch.equal(load_version(library, version).tensor, prompt.tensor)


def check_rows(method: PromptMethod, rows: torch.Tensor, model: ImportTarget,
                source: str) -> None:
    """Refuse token rows (PEFT's or KoboldAI's layout) that do not fit the loaded model."""
    method.check_peft_rows(rows, model.geometry, source)
    check_length(rows.shape[0], model.context, source=source)
    if not torch.isfinite(rows).all():
        raise PromptbankError(f"{source} holds NaN or infinite values.")
