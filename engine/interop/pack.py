"""Prompt packs (``.pbpack``): several tasks' versions with their eval data in one zip."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PromptbankError
from engine.interop.archive import checked_members, json_member, open_zip, read_member
from engine.interop.common import ImportReport, ImportTarget, check_prompt
from engine.library import Library
from engine.library.readers import parse_examples
from engine.prompts.soft_prompt import SoftPrompt
from engine.support.clock import utc_now
from engine.support.fileio import atomic_write_bytes, sha256_bytes

PACK_FORMAT = "promptbank-pack"
PACK_VERSION = 1


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
    with open_zip(path) as zf:
        members = checked_members(zf, path)
        if "manifest.json" not in members:
            raise PromptbankError(f"{path} has no manifest.json, so it is not a prompt pack.")
        manifest = json_member(zf, "manifest.json", path)
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
    data = read_member(zf, members[ref])
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
        check_prompt(prompt, model, source, force=force)
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
