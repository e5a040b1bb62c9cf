"""``library check``: every file the catalogue names verified (present, same sha256), and
the prompt and dataset files it does not name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.library.library import Library
from engine.support.fileio import sha256_file


@dataclass
class CheckReport:
    """What ``library check`` found: each catalogued file verified, and unnamed files."""

    root: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    integrity: str = "ok"

    @property
    def ok(self) -> bool:
        """True when every file matches and nothing else is there."""
        return not (self.missing or self.changed or self.extra) and self.integrity == "ok"

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
    report.integrity = library.db.execute("PRAGMA integrity_check").fetchone()[0]
    return report
