"""Writes the embedded model, converted to safetensors, for the bundle (``make package``).

Usage: ``python packaging/prepare_model.py OUT_DIR``. Reuses the user's cached conversion.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.commands._common import ProgressLine
from engine.model.bundle import FOLDER_NAME, SOURCE_FILE, BundledModel, find_bundled_model
from engine.model.convert import cached_file_hash, converted_folder
from engine.model.spec import resolve_from_gguf


def write_bundled_model(root: Path,
                        progress: Callable[[str, float], None] | None = None) -> BundledModel:
    """Convert the embedded GGUF (or reuse the cached conversion) into ``root``."""
    resolved = resolve_from_gguf()
    converted = converted_folder(resolved, *([progress] if progress else []))
    gguf = resolved.folder / str(resolved.gguf_file)
    target = root / FOLDER_NAME
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=root))
    try:
        staged = shutil.copytree(converted, tmp / FOLDER_NAME)
        (staged / SOURCE_FILE).write_text(json.dumps(
            {"gguf": gguf.name, "gguf_sha256": cached_file_hash(gguf)}, indent=1))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = find_bundled_model(root)
    assert found is not None
    return found


def main(argv: list[str]) -> int:
    """Write ``OUT_DIR/SmolLM2-135M-Instruct`` and say where."""
    if len(argv) != 1:
        print("usage: prepare_model.py OUT_DIR", file=sys.stderr)
        return 2
    bundled = write_bundled_model(Path(argv[0]), ProgressLine())
    print(f"bundled model: {bundled.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
