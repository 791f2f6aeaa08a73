# The two commands of README.md:
#   make run    set up .venv, then run the default workflow (snakemake --cores all)
#   make test   set up .venv (plus the test tools and the open_clip backend), then run the test suite
# Any extra Snakemake arguments go in ARGS, e.g. make run ARGS="--configfile config/paper.yaml".

PYTHON ?= python3
VENV ?= .venv
# torch is installed first, pinned, so pip does not resolve `torch>=2.3` to a newer build.
# On Linux x86_64, PyPI's torch wheels ship CUDA: GPU machines get CUDA torch with no edits;
# CPU-only machines still run it on the CPU. Override with e.g. TORCH="torch==2.5.1".
TORCH ?= torch==2.13.0
# `make test` adds the open_clip backend, SAELens and TensorBoard, so their tests run too, and Debian's
# chromium + chromium-driver (where apt-get can install them) for the latent browser's test. open_clip needs torchvision,
# which needs the torch it was built for: on x86_64 here torch 2.14.1 + torchvision 0.29.1
# (a CUDA build that also runs on the CPU); on aarch64 use "torch==2.9.1 torchvision==0.24.1".
OPENCLIP_TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
# Debian's chromium and its driver, for the latent browser's test (as root, where apt-get exists).
APT_CHROMIUM = { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && export DEBIAN_FRONTEND=noninteractive && \
  { apt-get install -y -q chromium chromium-driver >/dev/null || \
    { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }; }; }

export PATH := $(abspath $(VENV))/bin:$(PATH)
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test setup clean cost claims
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -c "import torch" 2>/dev/null || $(VENV)/bin/pip install -q "$(TORCH)"
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

run: $(STAMP)
	snakemake --cores all $(ARGS)

$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/pip install -q $(OPENCLIP_TORCH)
	$(VENV)/bin/pip install -q -e ".[test,openclip,saelens,tensorboard]"
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || $(APT_CHROMIUM) || \
	  echo "chromium not installed: tests/test_browser.py's headless-browser test will be skipped"
	touch $@

test: $(TEST_STAMP)
	python -m pytest -q

# Estimated jobs and GPU/CPU-hours of a config before launching it (default: config/paper.yaml).
cost: $(STAMP)
	python benchmarks/estimate_cost.py $(ARGS)

# Snapshot the scorecards of the default run and of the HET authors' options run (if built) into
# docs/claims/, and regenerate README.md's claims section from them.
CLAIM_RUNS := results/tables/claims.csv:default results/het_fig6_authors/tables/claims.csv:het_fig6_authors
claims: $(STAMP)
	mkdir -p docs/claims
	for run in $(CLAIM_RUNS); do src=$${run%%:*}; name=$${run##*:}; \
	  if [ -f "$$src" ]; then cp "$$src" "docs/claims/$$name.csv"; fi; done
	vlsae claims-readme $$(ls docs/claims/default.csv docs/claims/het_fig6_authors.csv 2>/dev/null)

clean:
	rm -rf results .snakemake
