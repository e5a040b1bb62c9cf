"""The embedded model converted ahead of time, so the installed app starts without converting.

``make package`` writes the safetensors folder that the first load would make, plus the
sha256 of the GGUF it came from (the model's fingerprint hashes that file), into the bundle's
``resources/models``. ``ModelHost`` looks there first for the ``default`` spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.support.paths import resources_dir

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
