# cellrobust - two-command set-up:  `make study`  and  `make test`.
# Both create .venv when missing and install what the project needs.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# `make study` installs the package with its export extra; torch is installed first and only
# when the venv has none, so a GPU user's CUDA build (installed into .venv beforehand, see
# README) is never replaced. `make test` adds every optional extra (bioimage.io, Cellpose,
# StarDist, Optuna) under constraints.txt, the versions that work together here (Cellpose 4
# needs torchvision, and PyPI's torchvision needs its matching PyPI torch).
TORCH_SPEC ?= torch==2.14.1
STUDY_ARGS ?= --preset quick
STAMP = $(VENV)/.installed-stamp
TEST_STAMP = $(VENV)/.installed-test-stamp

.PHONY: study test venv bench-setup bench clean-venv help

help:
	@echo "make study   - set up .venv and run the quick robustness study on the built-in data"
	@echo "make test    - set up .venv with test extras and run the whole test suite"
	@echo "make bench-setup / make bench - peer environments and side-by-side benchmarks"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[export]"
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP) constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,all]"
	@touch $(TEST_STAMP)

venv: $(TEST_STAMP)

study: $(STAMP)
	$(BIN)/cellrobust study $(STUDY_ARGS)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-setup: $(TEST_STAMP)
	$(BIN)/python -m benchmarks setup

bench: $(TEST_STAMP)
	$(BIN)/python -m benchmarks run

clean-venv:
	rm -rf $(VENV)
