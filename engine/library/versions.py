"""Prompt versions: numbered per task, never overwritten, checked against their checksum."""

from __future__ import annotations

from pathlib import Path

from engine.errors import PromptbankError
from engine.library.headers import header_int, is_prompt_file, read_header_metadata
from engine.library.records import Version, dumps, version_from_row
from engine.library.store import prompt_file
from engine.library.tasks import TaskRepository
from engine.support.clock import utc_now
from engine.support.fileio import sha256_bytes


class VersionRepository(TaskRepository):
    """The ``prompts`` table and the prompt files it names."""

    def add_version(self, task: str, prompt_bytes: bytes, *, parent_id: int | None = None,
                    run_id: int | None = None, metrics: dict | None = None) -> Version:
        """Store a new prompt version (the next number; never overwrites) and return it."""
        meta = read_header_metadata(prompt_bytes, source="The prompt data")
        if not is_prompt_file(prompt_bytes, meta):
            raise PromptbankError("The prompt data is not a Promptbank prompt file.",
                                  hint="Save prompts with SoftPrompt.to_bytes().")
        length = header_int(meta, "length", source="The prompt data")
        hidden = header_int(meta, "hidden_size", source="The prompt data")
        fingerprint = meta.get("model_fingerprint")
        if not fingerprint:
            raise PromptbankError("The prompt file's header names no model.",
                                  hint="Save prompts with SoftPrompt.to_bytes().")
        with self.transaction():
            record = self.get_task(task)
            if parent_id is not None:
                self._row("SELECT id FROM prompts WHERE id = ?", (parent_id,),
                          f"The parent version id {parent_id} does not exist.")
            number = self.db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM prompts "
                                     "WHERE task_id = ?", (record.id,)).fetchone()[0]
            digest = sha256_bytes(prompt_bytes)
            rel = prompt_file(record.id, number, digest)
            self._write_file(rel, prompt_bytes)
            version_id = self.db["prompts"].insert({
                "task_id": record.id, "number": number, "method": meta["method"],
                "length": length, "init": meta.get("init", ""), "parent_id": parent_id,
                "run_id": run_id, "fingerprint": fingerprint, "hidden_size": hidden,
                "path": rel, "sha256": digest, "metrics": dumps(metrics or {}),
                "created": meta.get("created") or utc_now()}).last_pk
        return self.version_by_id(version_id)

    def version_by_id(self, version_id: int) -> Version:
        """The version with this catalogue id."""
        return version_from_row(self._row("SELECT * FROM prompts WHERE id = ?", (version_id,),
                                  f"There is no prompt version with id {version_id}."))

    def get_version(self, task: str, version: int | None = None) -> Version:
        """Version ``version`` of a task; None gives the active one (else the latest)."""
        record = self.get_task(task)
        if version is None:
            if record.active_version_id is not None:
                return self.version_by_id(record.active_version_id)
            rows = self._rows("SELECT * FROM prompts WHERE task_id = ? ORDER BY number DESC "
                              "LIMIT 1", (record.id,))
            if not rows:
                raise PromptbankError(f"The task '{task}' has no trained prompt yet.",
                                      hint=f"Train one with `promptbank train {task}`.")
            return version_from_row(rows[0])
        return version_from_row(self._row(
            "SELECT * FROM prompts WHERE task_id = ? AND number = ?", (record.id, version),
            f"The task '{task}' has no version {version}.",
            f"See `promptbank versions {task}`."))

    def list_versions(self, task: str) -> list[Version]:
        """The task's versions, oldest first."""
        task_id = self.get_task(task).id
        return [version_from_row(r) for r in self._rows(
            "SELECT * FROM prompts WHERE task_id = ? ORDER BY number", (task_id,))]

    def set_active(self, task: str, number: int) -> Version:
        """Make version ``number`` the one the task uses."""
        with self.transaction():
            version = self.get_version(task, number)
            self.db["tasks"].update(version.task_id, {"active_version_id": version.id})
        return version

    def version_path(self, version: Version) -> Path:
        """The absolute path of a version's prompt file."""
        return self.root / version.path

    def read_version_bytes(self, version: Version) -> bytes:
        """A version's file, checked against the catalogue's sha256."""
        return self.files.read(version.path, version.sha256, "The prompt file")
