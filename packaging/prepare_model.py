"""Writes the embedded model, converted to safetensors, for the bundle (``make package``).

Usage: ``python packaging/prepare_model.py OUT_DIR``. Reuses the user's cached conversion.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.commands._common import stderr_progress
from engine.model_bundle import write_bundled_model


def main(argv: list[str]) -> int:
    """Write ``OUT_DIR/SmolLM2-135M-Instruct`` and say where."""
    if len(argv) != 1:
        print("usage: prepare_model.py OUT_DIR", file=sys.stderr)
        return 2
    bundled = write_bundled_model(Path(argv[0]), stderr_progress)
    print(f"bundled model: {bundled.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
