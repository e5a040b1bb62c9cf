"""The embedded model converted ahead of time, so the installed app starts without converting.

``make package`` writes the safetensors folder that the first load would make, plus the
sha256 of the GGUF it came from (the model's fingerprint hashes that file), into the bundle's
``resources/models``. ``ModelHost`` looks there first for the ``default`` spec.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.paths import resources_dir

SOURCE_FILE = "promptbank-source.json"
FOLDER_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class BundledModel:
    """A converted copy of the embedded model and the sha256 of its GGUF file."""

    folder: Path
    gguf_sha256: str


def find_bundled_model(root: Path | None = None) -> BundledModel | None:
    """The converted embedded model under ``root`` (default: the resources), if present."""
    folder = (root or resources_dir() / "models") / FOLDER_NAME
    source = folder / SOURCE_FILE
    if not (folder / "config.json").is_file() or not source.is_file():
        return None
    return BundledModel(folder, json.loads(source.read_text())["gguf_sha256"])


def write_bundled_model(root: Path,
                        progress: Callable[[str, float], None] | None = None) -> BundledModel:
    """Convert the embedded GGUF (or reuse the cached conversion) into ``root``."""
    from engine.model import _cached_file_hash, converted_folder, resolve_from_gguf

    resolved = resolve_from_gguf()
    converted = converted_folder(resolved, *([progress] if progress else []))
    gguf = resolved.folder / str(resolved.gguf_file)
    target = root / FOLDER_NAME
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=root))
    try:
        staged = shutil.copytree(converted, tmp / FOLDER_NAME)
        (staged / SOURCE_FILE).write_text(json.dumps(
            {"gguf": gguf.name, "gguf_sha256": _cached_file_hash(gguf)}, indent=1))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = find_bundled_model(root)
    assert found is not None
    return found
