#!/usr/bin/env bash
# Builds dist/promptbank/ (`make package`): converts the embedded model into build/bundle-model,
# runs PyInstaller on packaging/promptbank.spec, then reports the size and what dominates it.
# Usage: packaging/build.sh [PYTHON]   (the venv to build from; default .venv-pack/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv-pack/bin/python}"
start=$(date +%s)
"$PY" packaging/prepare_model.py build/bundle-model
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/promptbank.spec
echo "Built dist/promptbank in $(( $(date +%s) - start )) s: $(du -sh dist/promptbank | cut -f1)"
echo "Largest parts:"
du -s dist/promptbank/_internal/* | sort -rn | awk 'NR <= 8 {printf "  %5d MB  %s\n", $1/1024, $2}'
