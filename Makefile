# The two commands of README.md:
#   make run    set up .venv, then run the default workflow (snakemake --cores all)
#   make test   set up .venv, then run the test suite
# Any extra Snakemake arguments go in ARGS, e.g. make run ARGS="--configfile config/paper.yaml".

PYTHON ?= python3
VENV ?= .venv
# torch is installed first, pinned, so pip does not resolve `torch>=2.3` to a newer build.
# On Linux x86_64, PyPI's torch wheels ship CUDA: GPU machines get CUDA torch with no edits;
# CPU-only machines still run it on the CPU. Override with e.g. TORCH="torch==2.5.1".
TORCH ?= torch==2.13.0
ARGS ?=

export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.installed

.PHONY: run test setup clean
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -c "import torch" 2>/dev/null || $(VENV)/bin/pip install -q "$(TORCH)"
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

run: $(STAMP)
	snakemake --cores all $(ARGS)

test: $(STAMP)
	python -m pytest -q

clean:
	rm -rf results .snakemake
