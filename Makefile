# cellrobust - two-command set-up:  `make study`  and  `make test`.
# Both create .venv when missing and install what the project needs.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Torch is installed first and only when the venv has none, so a GPU user's CUDA build
# (installed into .venv beforehand, see README) is never replaced. On the development
# machines `torch==2.13.0` resolves to a local CPU wheel; elsewhere it is a PyPI build.
TORCH_SPEC ?= torch==2.13.0
STUDY_ARGS ?= --preset quick
STAMP = $(VENV)/.installed-stamp

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
	$(BIN)/python -m pip install --quiet -e ".[test,export]"
	@touch $(STAMP)

venv: $(STAMP)

study: $(STAMP)
	$(BIN)/cellrobust study $(STUDY_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench-setup: $(STAMP)
	$(BIN)/python -m benchmarks setup

bench: $(STAMP)
	$(BIN)/python -m benchmarks run

clean-venv:
	rm -rf $(VENV)
