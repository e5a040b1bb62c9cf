#!/usr/bin/env bash
# One call on a lent GPU machine: `promptbank check` on random weights of the embedded model's
# shape (no model transfer). Carry .gpu/whl, .gpu/bin and .gpu/tokenizer (packaging/gpu/
# prepare.sh fills them); the JSON verdict and the log come back under $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
. .gpu/bin/env.sh
export PROMPTBANK_TOKENIZER="$(pwd)/.gpu/tokenizer"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
python3 -m engine.cli --device cuda check --geometry smollm2-135m "$@" --json \
  > "$OUT/check.json" 2> "$OUT/check.log"
code=$?
tail -n 30 "$OUT/check.log"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); [print(f\"{f['status']:<7} {f['stage']}: {f['measured']} (target {f['target']})\") for f in d['figures']]" "$OUT/check.json"
exit $code
