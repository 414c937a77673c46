# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs the project into it (torch pinned to the CPU build
# on this machine's disk: a range alone would pull a multi-GB CUDA build).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
EXTRAS  ?= test
STAMP   := $(VENV)/.installed-$(EXTRAS)

.PHONY: setup test demo pipeline lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)" -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/lmkl demo

# The whole DAG on the default (tiny) profile → figures/tiny/; Snakemake reads profiles/default.
# Other profiles: `.venv/bin/snakemake --cores all --config profile=smollm2` (see Snakefile).
pipeline: setup
	$(BIN)/snakemake --cores all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
