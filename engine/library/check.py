"""``library check``: every file the catalogue names verified (present, same sha256; a
prompt file's name and header agreeing with its row), the prompt and dataset files it does
not name, and temporary files a killed write left behind."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.errors import PromptbankError
from engine.library.headers import header_int, read_header_metadata
from engine.library.library import Library
from engine.library.records import Version
from engine.library.store import PROMPT_FILE
from engine.library.tidy import RECOVERED
from engine.support.fileio import sha256_file, temporary_files


@dataclass
class CheckReport:
    """What ``library check`` found: each catalogued file verified, and unnamed files."""

    root: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    #: Prompt files whose name or header disagrees with their catalogue row: "path: why".
    mismatched: list[str] = field(default_factory=list)
    #: Temporary files of writes that never finished (a kill, a full disk).
    temporary: list[str] = field(default_factory=list)
    #: Files a killed write left unrecorded, put aside in ``recovered/`` when the library
    #: was opened (kept for the user; they do not make the library unhealthy).
    recovered: list[str] = field(default_factory=list)
    integrity: str = "ok"

    @property
    def ok(self) -> bool:
        """True when every file matches and nothing else is there."""
        return not (self.missing or self.changed or self.extra or self.mismatched
                    or self.temporary) and self.integrity == "ok"

    def to_dict(self) -> dict:
        """The report as JSON-friendly data."""
        return {**asdict(self), "ok": self.ok}


def check_library(library: Library) -> CheckReport:
    """Verify every file the catalogue names (present, same sha256) and list unnamed ones."""
    report = CheckReport(str(library.root))
    named: dict[str, str] = {}
    for task in library.list_tasks():
        for version in library.list_versions(task.name):
            named[version.path] = version.sha256
            why = _disagreement(library, version)
            if why:
                report.mismatched.append(f"{version.path}: {why}")
        for dataset in library.list_datasets(task.name):
            named[dataset.path] = dataset.sha256
            if dataset.eval_path:
                named[dataset.eval_path] = dataset.eval_sha256 or ""
    for rel, digest in sorted(named.items()):
        path = library.files.path(rel)
        report.checked += 1
        if not path.is_file():
            report.missing.append(rel)
        elif sha256_file(path) != digest:
            report.changed.append(rel)
    report.extra = [rel for rel in library.files.content_files() if rel not in named]
    report.temporary = [str(p.relative_to(library.root))
                        for p in temporary_files(library.root)]
    report.integrity = library.db.execute("PRAGMA integrity_check").fetchone()[0]
    report.recovered = sorted(str(p.relative_to(library.root))
                              for p in (library.root / RECOVERED).rglob("*") if p.is_file())
    return report


def _disagreement(library: Library, version: Version) -> str:
    """How a prompt file's name or header disagrees with its catalogue row ("" if not)."""
    match = PROMPT_FILE.fullmatch(version.path)
    if match is None or not version.sha256.startswith(match["sha"]):
        return "its name does not carry the checksum the catalogue records"
    if int(match["number"]) != version.number:
        return f"its name says version {match['number']}, the catalogue {version.number}"
    path = library.files.path(version.path)
    if not path.is_file():
        return ""  # reported as missing
    try:
        meta = read_header_metadata(path.read_bytes(), source=version.path)
        found = {"method": meta.get("method"), "length": header_int(meta, "length",
                                                                      source=version.path),
                 "model": meta.get("model_fingerprint")}
    except PromptbankError as exc:
        return str(exc)
    wanted = {"method": version.method, "length": version.length, "model": version.fingerprint}
    return "; ".join(f"its header says {key} {found[key]}, the catalogue {wanted[key]}"
                     for key in wanted if found[key] != wanted[key])
