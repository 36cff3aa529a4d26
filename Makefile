# Every target does its own set-up: a fresh clone needs only python3 (3.11) and node (>= 20).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
PIPENV_VERSION := 2026.10.3
TOOLS := .tools
VENV := .venv
PY := $(VENV)/bin/python
CDKTF := node_modules/.bin/cdktf

export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export PIPENV_VERBOSITY := -1
# Node 20 is past its end of life; jsii says so on every start. We know; keep the output readable.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# No telemetry from the cdktf CLI.
export CHECKPOINT_DISABLE := 1
# Some machines point TF_CLI_CONFIG_FILE at a file that does not exist; terraform then prints the same
# warning for every stack. Such a setting means nothing: drop it.
ifneq ($(TF_CLI_CONFIG_FILE),)
ifeq ($(wildcard $(TF_CLI_CONFIG_FILE)),)
unexport TF_CLI_CONFIG_FILE
endif
endif

.PHONY: help synth test desktop image bench clean

help:
	@echo "make synth    synthesize the Terraform JSON of both stacks into cdktf.out/"
	@echo "make test     run every test (stacks, validation, scanners, the image in a real browser)"
	@echo "make desktop  build the desktop image and run it here, with its URL printed"
	@echo "make bench    run the benchmarks under bench/"

$(TOOLS)/bin/pipenv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check pipenv==$(PIPENV_VERSION)

# The Pipfile.lock environment, rebuilt only when the lock file changes.
$(VENV)/.synced: Pipfile.lock constructs/pyproject.toml | $(TOOLS)/bin/pipenv
	$(TOOLS)/bin/pipenv sync --dev
	@touch $@

# Checkov and hadolint in their own venv: Checkov pins packaging<24 and python-dateutil<3, which the
# Pipfile.lock environment (cdktf, jsii) can not share.
SCANNERS := $(TOOLS)/scanners
$(SCANNERS)/.installed: tools/scanners-requirements.txt
	rm -rf $(SCANNERS)
	$(PYTHON) -m venv $(SCANNERS)
	$(SCANNERS)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r tools/scanners-requirements.txt
	@touch $@

# The cdktf CLI, pinned in package-lock.json.
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

synth: $(VENV)/.synced node_modules/.installed
	@# Piped (CI, logs): no spinner frames.
	@if [ -t 1 ]; then $(CDKTF) synth --output cdktf.out; else CI=1 $(CDKTF) synth --output cdktf.out; fi
	@$(PY) -m microvm.next_steps cdktf.out

test: $(VENV)/.synced node_modules/.installed $(SCANNERS)/.installed
	@scripts/system-packages.sh
	$(PY) -m pytest

desktop: $(VENV)/.synced
	@scripts/system-packages.sh
	@$(PY) -m tests.image.desktop_local

bench: $(VENV)/.synced node_modules/.installed
	@scripts/system-packages.sh
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf cdktf.out .build test-artifacts
