"""Import and export: PEFT adapter folders, KoboldAI soft-prompt zips, prompt packs, files.

PEFT: ``adapter_config.json`` + ``adapter_model.safetensors`` holding ``prompt_embeddings``
(PROMPT_TUNING: (n, hidden); PREFIX_TUNING: (n, layers·2·kv_heads·head_dim), PEFT's layout
for grouped-query models). KoboldAI: a zip with ``tensor.npy`` (n, hidden) and
``meta.json``; it has no prefix form. Packs (``.pbpack``): a zip with ``manifest.json``,
prompt files and optional eval data, checked member by member before anything is written.
Every import checks what it brings against the loaded model (``ImportTarget``): the geometry,
a length that leaves room for data in the context, the archive's total size, and for PEFT
adapters the base model and layer count their config names.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine import safe_json
from engine.clock import utc_now
from engine.data import parse_examples
from engine.errors import PromptbankError
from engine.fileio import atomic_write_bytes, sha256_bytes
from engine.library import Library, Version
from engine.methods import by_peft_type, get_method
from engine.methods.base import PromptMethod
from engine.prompts import ModelGeometry, SoftPrompt, check_length

FORMATS = ("peft", "kobold", "pack", "safetensors")
PACK_FORMAT = "promptbank-pack"
PACK_VERSION = 1
MAX_MEMBER_BYTES = 256 << 20
MAX_MEMBERS = 10000
MAX_META_BYTES = 1 << 20
#: All members of an archive together, uncompressed (a pack of a large library stays far below).
MAX_ARCHIVE_BYTES = 1 << 30


@dataclass(frozen=True)
class ImportTarget:
    """The loaded model as imports check against it: its geometry, its context length, and
    the names a PEFT adapter may give it as its base model."""

    geometry: ModelGeometry
    context: int
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, host) -> ImportTarget:
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


# Shared ------------------------------------------------------------------------------------


def load_version(library: Library, version: Version) -> SoftPrompt:
    """A version's SoftPrompt, its file checked against the catalogue's checksum."""
    data = library.read_version_bytes(version)
    return SoftPrompt.from_bytes(data, source=str(library.version_path(version)))


def _model_heads(library: Library, prompt: SoftPrompt) -> int:
    info = library.get_model(prompt.geometry.fingerprint) or {}
    return int(info.get("heads") or prompt.geometry.hidden_size // prompt.geometry.head_dim)


def _check_prompt(prompt: SoftPrompt, model: ImportTarget, source: str, *,
                  force: bool = False) -> None:
    """Refuse a prompt the loaded model cannot serve: another geometry (another model with
    ``force``), or a length that leaves no room for data in its context."""
    prompt.check_fits(model.geometry, force=force)
    check_length(prompt.length, model.context, source=source)


def _add_imported(library: Library, task: str, prompt: SoftPrompt, report: ImportReport,
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


def _check_rows(method: PromptMethod, rows: torch.Tensor, model: ImportTarget,
                source: str) -> None:
    """Refuse token rows (PEFT's or KoboldAI's layout) that do not fit the loaded model."""
    method.check_peft_rows(rows, model.geometry, source)
    check_length(rows.shape[0], model.context, source=source)
    if not torch.isfinite(rows).all():
        raise PromptbankError(f"{source} holds NaN or infinite values.")


# Plain safetensors --------------------------------------------------------------------------


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
    data = _read_capped(Path(path))
    prompt = SoftPrompt.from_bytes(data, source=str(path))
    _check_prompt(prompt, model, str(path), force=force)
    report = ImportReport()
    if prompt.geometry.fingerprint != model.geometry.fingerprint:
        report.notes.append("The prompt was trained on another model of the same size.")
    _add_imported(library, task or prompt.task or Path(path).stem, prompt, report, Path(path).name)
    return report


def _read_capped(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_MEMBER_BYTES:
            raise PromptbankError(f"{path} is larger than a prompt file can be.",
                                  hint="Check that this is the right file.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PromptbankError(f"{path} does not exist.", hint="Check the path.") from exc
    except IsADirectoryError as exc:
        raise PromptbankError(f"{path} is a folder.", hint="Give a file.") from exc


# PEFT -------------------------------------------------------------------------------------


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
        **method.peft_config(g, _model_heads(library, prompt)),
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
    config = _json_file(config_path)
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
        tensors = st_load(_read_capped(weights_path))
    except SafetensorError as exc:
        raise PromptbankError(f"{weights_path} is damaged ({exc}).") from exc
    if "prompt_embeddings" not in tensors:
        raise PromptbankError(f"{weights_path} has no 'prompt_embeddings' tensor.")
    rows = tensors["prompt_embeddings"].float()
    _check_rows(method, rows, model, str(weights_path))
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
    _add_imported(library, name, prompt, report, "a PEFT adapter")
    return report


# KoboldAI -----------------------------------------------------------------------------------


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


def import_kobold(library: Library, path: Path, model: ImportTarget, *,
                  task: str | None = None) -> ImportReport:
    """Import a KoboldAI soft-prompt zip as a prompt version for the loaded model."""
    with _open_zip(Path(path)) as zf:
        members = _checked_members(zf, Path(path))
        if "tensor.npy" not in members:
            raise PromptbankError(f"{path} has no tensor.npy, so it is not a KoboldAI soft prompt.")
        meta = {}
        if "meta.json" in members:
            meta = _json_member(zf, "meta.json", Path(path))
        try:
            array = np.load(io.BytesIO(_read_member(zf, members["tensor.npy"])),
                            allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise PromptbankError(f"The tensor.npy in {path} is damaged ({exc}).") from exc
    if array.dtype.kind not in "fiu":
        raise PromptbankError(f"The tensor.npy in {path} does not hold numbers.")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    _check_rows(get_method("prompt"), tensor, model, f"The tensor.npy in {path}")
    name = task or str(meta.get("name") or "").strip() or Path(path).stem
    prompt = SoftPrompt("prompt", tensor, model.geometry, task=name, init="import:kobold",
                        extra={"kobold_description": str(meta.get("description", ""))[:500]})
    report = ImportReport(notes=["KoboldAI soft prompts carry no model fingerprint; the prompt "
                                 "is assumed to be for the loaded model (same hidden size)."])
    _add_imported(library, name.replace("/", "-"), prompt, report, "a KoboldAI soft prompt")
    return report


# Zip checks ---------------------------------------------------------------------------------


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise PromptbankError(f"{path} does not exist.", hint="Check the path.") from exc
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise PromptbankError(f"{path} is not a valid zip archive.",
                              hint="Check that the file was copied completely.") from exc


def _checked_members(zf: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by name, refusing escaping paths, links, oversized members and
    archives too large in all (a member never yields more than its listed size)."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise PromptbankError(f"{path} holds too many files ({len(infos)}).")
    total = sum(info.file_size for info in infos)
    if total > MAX_ARCHIVE_BYTES:
        raise PromptbankError(
            f"{path} unpacks to {total / 2**20:,.0f} MiB, more than the "
            f"{MAX_ARCHIVE_BYTES / 2**20:,.0f} MiB an import may hold; it was refused.",
            hint="Export fewer tasks or versions per pack.")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name)
        if (pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name
                or "\x00" in name):
            raise PromptbankError(f"{path} holds a file '{name}' whose path escapes the "
                                  "archive's folder; it was refused.",
                                  hint="Only import archives from people you trust.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise PromptbankError(f"{path} holds a symbolic link '{name}'; it was refused.",
                                  hint="Only import archives from people you trust.")
        if info.file_size > MAX_MEMBER_BYTES:
            raise PromptbankError(f"{path} holds an oversized file '{name}' "
                                  f"({info.file_size} bytes); it was refused.")
        if name in members:
            raise PromptbankError(f"{path} holds '{name}' twice; it was refused.")
        if not info.is_dir():
            members[name] = info
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError) as exc:
        raise PromptbankError(f"The archive member '{info.filename}' is damaged ({exc}).",
                              hint="Check that the file was copied completely.") from exc
    if len(data) > MAX_MEMBER_BYTES:
        raise PromptbankError(f"The archive member '{info.filename}' is oversized.")
    return data


def _json_member(zf: zipfile.ZipFile, name: str, path: Path) -> dict:
    info = zf.getinfo(name)
    if info.file_size > MAX_META_BYTES:
        raise PromptbankError(f"The {name} in {path} is oversized.")
    return _json_object(_read_member(zf, info), f"The {name} in {path}")


def _json_file(path: Path) -> dict:
    with path.open("rb") as fh:
        return _json_object(fh.read(MAX_META_BYTES + 1), str(path))


def _json_object(data: bytes, what: str) -> dict:
    """A small JSON object (manifest, meta or adapter config), bounded in size and depth."""
    try:
        value = safe_json.loads(data, max_bytes=MAX_META_BYTES)
    except safe_json.JsonRefused as exc:
        raise PromptbankError(f"{what} is not valid JSON: {exc}.") from exc
    if not isinstance(value, dict):
        raise PromptbankError(f"{what} is not a JSON object.")
    return value


# Packs --------------------------------------------------------------------------------------


def export_pack(library: Library, tasks: list[str], out: Path, *, include_eval: bool = True,
                version: int | None = None) -> Path:
    """Write a ``.pbpack`` with the tasks, all their versions (or only ``version`` of a single
    task) and their eval data."""
    manifest: dict = {"format": PACK_FORMAT, "format_version": PACK_VERSION,
                      "created": utc_now(), "tasks": []}
    files: dict[str, bytes] = {}
    for index, name in enumerate(tasks):
        task = library.get_task(name)
        versions = library.list_versions(name)
        if version is not None:
            versions = [library.get_version(name, version)]
        by_id = {v.id: v.number for v in versions}
        entry = {"name": task.name, "kind": task.kind, "labels": task.labels,
                 "description": task.description, "instruction": task.instruction,
                 "input_template": task.input_template,
                 "active": by_id.get(task.active_version_id or -1), "versions": []}
        for item in versions:
            member = f"tasks/{index}/v{item.number}.safetensors"
            files[member] = library.read_version_bytes(item)
            entry["versions"].append({
                "number": item.number, "parent": by_id.get(item.parent_id or -1),
                "file": member, "sha256": item.sha256, "metrics": item.metrics,
                "fingerprint": item.fingerprint, "method": item.method, "length": item.length})
            model = library.get_model(item.fingerprint)
            if model:
                manifest.setdefault("models", {})[item.fingerprint] = model
        if include_eval and library.list_datasets(name):
            rows = library.examples(name, "eval")
            if rows:
                text = "".join(json.dumps({"input": e.input, "output": e.output}) + "\n"
                               for e in rows).encode()
                member = f"tasks/{index}/eval.jsonl"
                files[member] = text
                entry["eval"] = {"file": member, "sha256": sha256_bytes(text), "rows": len(rows)}
        manifest["tasks"].append(entry)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        for member, data in files.items():
            zf.writestr(member, data)
    atomic_write_bytes(Path(out), archive.getvalue())
    return Path(out)


@dataclass
class _PackTask:
    entry: dict
    prompts: list[tuple[dict, bytes, SoftPrompt]]
    eval_data: bytes | None


def _read_pack(path: Path, model: ImportTarget, force: bool) -> tuple[list[_PackTask], list[str]]:
    """Every task of a pack, fully checked (checksums, geometry) before anything is written."""
    notes: list[str] = []
    with _open_zip(path) as zf:
        members = _checked_members(zf, path)
        if "manifest.json" not in members:
            raise PromptbankError(f"{path} has no manifest.json, so it is not a prompt pack.")
        manifest = _json_member(zf, "manifest.json", path)
        if manifest.get("format") != PACK_FORMAT:
            raise PromptbankError(f"{path} is not a Promptbank prompt pack.")
        if not isinstance(manifest.get("format_version"), int) or \
                manifest["format_version"] > PACK_VERSION:
            raise PromptbankError(f"{path} was written by a newer Promptbank.",
                                  hint="Update Promptbank to import it.")
        tasks = manifest.get("tasks")
        if not isinstance(tasks, list):
            raise PromptbankError(f"The manifest of {path} lists no tasks.")
        out = []
        for entry in tasks:
            out.append(_read_pack_task(zf, members, entry, path, model, force, notes))
    return out, notes


def _member_bytes(zf: zipfile.ZipFile, members: dict, ref: object, digest: object,
                  path: Path) -> bytes:
    if not isinstance(ref, str) or ref not in members:
        raise PromptbankError(f"{path} lacks the file '{ref}' its manifest lists.",
                              hint="The pack is incomplete; ask for a new copy.")
    data = _read_member(zf, members[ref])
    if sha256_bytes(data) != digest:
        raise PromptbankError(f"The file '{ref}' in {path} does not match its checksum.",
                              hint="The pack was changed or damaged; ask for a new copy.")
    return data


def _read_pack_task(zf: zipfile.ZipFile, members: dict, entry: object, path: Path,
                    model: ImportTarget, force: bool, notes: list[str]) -> _PackTask:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
            or not isinstance(entry.get("versions", []), list):
        raise PromptbankError(f"The manifest of {path} has a malformed task entry.")
    prompts = []
    for item in entry.get("versions", []):
        if not isinstance(item, dict) or not isinstance(item.get("number"), int):
            raise PromptbankError(f"The manifest of {path} has a malformed version entry.")
        data = _member_bytes(zf, members, item.get("file"), item.get("sha256"), path)
        source = f"{item.get('file')} in {path}"
        prompt = SoftPrompt.from_bytes(data, source=source)
        _check_prompt(prompt, model, source, force=force)
        if prompt.geometry.fingerprint != model.geometry.fingerprint:
            notes.append(f"{entry['name']} v{item['number']} was trained on another model "
                         "of the same size (imported with --force).")
        prompts.append((item, data, prompt))
    eval_data = None
    if isinstance(entry.get("eval"), dict):
        eval_data = _member_bytes(zf, members, entry["eval"].get("file"),
                                  entry["eval"].get("sha256"), path)
        parse_examples(eval_data, f"{entry['name']}-eval.jsonl")
    return _PackTask(entry, prompts, eval_data)


def _free_name(library: Library, name: str) -> str:
    taken = {t.name for t in library.list_tasks()}
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name} ({number})"


def import_pack(library: Library, path: Path, model: ImportTarget, *,
                force: bool = False) -> ImportReport:
    """Import a ``.pbpack`` in one transaction; a task whose versions are all here is skipped,
    one that clashes by name is added under a new name."""
    path = Path(path)
    tasks, notes = _read_pack(path, model, force)
    report = ImportReport(notes=notes)
    with library.transaction():
        for pack_task in tasks:
            _import_pack_task(library, pack_task, path, report)
    return report


def _import_pack_task(library: Library, pack_task: _PackTask, path: Path,
                      report: ImportReport) -> None:
    entry = pack_task.entry
    name = entry["name"]
    existing = {t.name for t in library.list_tasks()}
    if name in existing:
        have = {v.sha256 for v in library.list_versions(name)}
        if all(sha256_bytes(data) in have for _, data, _ in pack_task.prompts):
            report.skipped.append(f"{name}: already in the library")
            return
        new_name = _free_name(library, name)
        report.renamed.append(f"{name} -> {new_name}")
        name = new_name
    labels = entry.get("labels") or None
    task = library.create_task(
        name, kind=str(entry.get("kind", "generate")),
        labels=[str(x) for x in labels] if isinstance(labels, list) else None,
        description=str(entry.get("description") or ""),
        instruction=str(entry.get("instruction") or ""),
        input_template=entry.get("input_template") if isinstance(
            entry.get("input_template"), str) else None)
    ids: dict[int, int] = {}
    for item, data, _prompt in sorted(pack_task.prompts, key=lambda p: p[0]["number"]):
        metrics = item.get("metrics") if isinstance(item.get("metrics"), dict) else None
        version = library.add_version(name, data, parent_id=ids.get(item.get("parent")),
                                      metrics=metrics)
        ids[item["number"]] = version.id
        if item["number"] == entry.get("active"):
            library.set_active(name, version.number)
    if pack_task.eval_data is not None:
        _add_pack_eval(library, name, pack_task.eval_data)
    report.added.append(f"{task.name} ({len(ids)} version{'s' * (len(ids) != 1)})")


def _add_pack_eval(library: Library, task: str, data: bytes) -> None:
    library.add_dataset_bytes(task, f"{task}-eval.jsonl", data, role="eval")


# Dispatch -----------------------------------------------------------------------------------


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
        with _open_zip(path) as zf:
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
                   version: int | None = None, include_eval: bool = True) -> Path:
    """Export one task's version (or, for packs, the task with all its versions)."""
    if fmt not in FORMATS:
        raise PromptbankError(f"Unknown export format '{fmt}'.",
                              hint=f"Use one of: {', '.join(FORMATS)}.")
    if fmt == "pack":
        return export_pack(library, [task], out, include_eval=include_eval, version=version)
    chosen = library.get_version(task, version)
    if fmt == "peft":
        return export_peft(library, chosen, out)
    if fmt == "kobold":
        return export_kobold(library, chosen, out, task_name=task)
    return export_safetensors(library, chosen, out)
