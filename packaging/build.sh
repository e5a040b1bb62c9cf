#!/usr/bin/env bash
# Builds dist/promptbank/ with PyInstaller (not part of `make test`; needs `pip install pyinstaller`).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m PyInstaller --noconfirm --distpath dist --workpath build packaging/promptbank.spec
