# One target per stage; every target installs what it needs into .venv first.
# Stage targets take RUN=<run folder>; extract also INPUT=<documents>. Extra config: SET="k=v k2=v2".

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GDT := $(BIN)/gdt
RUN ?= runs/demo
INPUT ?= runs/sample-corpus/documents.parquet
SET ?=
SETS := $(foreach s,$(SET),--set $(s))

.PHONY: help install demo test test-fast lint format bench sample-corpus extract clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/gdt: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/gdt

install: $(BIN)/gdt  ## create .venv and install gdt with its test tools

DEMO_CORPUS := runs/sample-corpus

demo: install  ## the whole pipeline on the bundled sample corpus
	$(GDT) sample-corpus $(DEMO_CORPUS)
	$(GDT) extract --input $(DEMO_CORPUS)/documents.parquet --run $(RUN)

test: install  ## the full test suite (unit and integration)
	$(BIN)/python -m pytest

test-fast: install  ## unit tests only
	$(BIN)/python -m pytest -m "not integration and not slow"

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## run every benchmark and rewrite BENCHMARKS.md
	$(BIN)/python -m benchmarks.run_all

sample-corpus: install  ## build the sample corpus into runs/sample-corpus
	$(GDT) sample-corpus runs/sample-corpus

extract: install  ## gdt extract --input $(INPUT) --run $(RUN)
	$(GDT) extract --input $(INPUT) --run $(RUN) $(SETS)

clean:  ## remove runs/ (not .venv)
	rm -rf runs
