# p2psync developer commands. Everything needed is set up in .venv on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOME_DIR ?= $(CURDIR)/.node
export P2PSYNC_MDNS_INTERFACES ?= 127.0.0.1

.PHONY: run test lint bench soak fuzz reliability clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	@test -f "$(HOME_DIR)/config.toml" || $(BIN)/p2psync --home "$(HOME_DIR)" init
	$(BIN)/p2psync --home "$(HOME_DIR)" run

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check p2psync discovery_server tests bench
	$(BIN)/mypy p2psync discovery_server

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .node .pytest_cache
