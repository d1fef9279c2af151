# Two commands: `make run` (the main job on its defaults) and `make test`.
# Both create .venv when missing and install what they need; a second call installs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= $(abspath ../shared)

# Offline, quiet, local-only settings for Prefect, MLflow, datasets and NLTK.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export NLTK_DATA ?= $(SHARED)/data/nltk_data
# torch's OpenMP threads spin while waiting by default: on 2 shared cores that cost 30-80x per step
export OMP_WAIT_POLICY ?= PASSIVE

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SCREENSHOTS ?= docs/screenshots

.PHONY: run test bench install clean serve ui ui-check fonts team-up team-down postgres

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on this machine (a looser pin pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lowlm run sample

test: $(STAMP) postgres
	$(BIN)/python -m pytest -q

# PostgreSQL's server programs (initdb, pg_ctl) for the team set-up and its tests: Debian's package when missing
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

# Slow tests and benchmarks on ../shared/data (see docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --ignore=tests/test_browser.py
	$(BIN)/python benchmarks/bag_vs_fasttext.py

# Serve every deployment (retrain at 03:00 UTC and on new data); starts a Prefect server if needed
serve: $(STAMP)
	$(BIN)/lowlm serve

# Prefect UI on 127.0.0.1:4200 and MLflow UI on 127.0.0.1:5000 until Ctrl-C
ui: $(STAMP)
	$(BIN)/lowlm ui

# The team set-up on this machine: PostgreSQL on 127.0.0.1:5433 (as the postgres user when root) plus the
# MLflow server (:5000) and the Prefect server (:4200) on it, in the background; team-down stops all three
team-up: $(STAMP) postgres
	$(BIN)/lowlm team up

team-down: $(STAMP)
	$(BIN)/lowlm team down

# Debian's CJK fonts, so attention maps draw Chinese tokens
fonts:
	fc-list | grep -q "Noto Sans CJK" || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq fonts-noto-cjk; }

# Both UIs checked in headless Chromium (Debian's, driven by Playwright); screenshots in $(SCREENSHOTS)
ui-check: $(STAMP) fonts
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	$(BIN)/pip install --quiet -e '.[browser]'
	LOWLM_SCREENSHOTS=$(SCREENSHOTS) $(BIN)/python -m pytest -q -m slow tests/test_browser.py

clean:
	rm -rf .lowlm mlruns/mlflow.db mlruns/artifacts .pytest_cache
