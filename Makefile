# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data

.PHONY: demo test lint bench bench-stream bench-model ec57 train evaluate install

$(BIN)/cardiowatch: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/cardiowatch

install: $(BIN)/cardiowatch

demo: install
	$(BIN)/cardiowatch demo --data $(DATA)

test: install
	$(BIN)/ruff check streams models alerts tests benchmarks
	$(BIN)/mypy streams models alerts
	CARDIOWATCH_DATA=$(DATA) $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check streams models alerts tests benchmarks
	$(BIN)/mypy streams models alerts

bench: install
	$(BIN)/python benchmarks/bench_ingest.py

bench-stream: install
	$(BIN)/python benchmarks/bench_stream.py --data $(DATA)

ec57: install
	$(BIN)/cardiowatch ec57 --data $(DATA)

bench-model: install
	$(BIN)/python benchmarks/bench_model.py --data $(DATA)

train: install
	$(BIN)/cardiowatch train --data $(DATA) --out $(or $(OUT),models/artifacts/cardiorisk)

evaluate: install
	$(BIN)/cardiowatch evaluate --data $(DATA) --out $(or $(OUT),evaluation)
