# p2psync developer commands. Everything needed is set up in .venv on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOME_DIR ?= $(CURDIR)/.node
# mDNS stays on loopback unless you say otherwise (P2PSYNC_MDNS_INTERFACES= make run uses all interfaces).
export P2PSYNC_MDNS_INTERFACES ?= 127.0.0.1

CHAOS_MINUTES ?= 20
CHAOS_SEED ?= 1

.PHONY: run test lint bench bench-discovery soak chaos powerloss fuzz fuzz-connection reliability screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	@test -f "$(HOME_DIR)/config.toml" || $(BIN)/p2psync --home "$(HOME_DIR)" init
	@echo "This device: $$($(BIN)/p2psync --home "$(HOME_DIR)" id)"
	@echo "Add a peer:  $(BIN)/p2psync --home $(HOME_DIR) peer add OTHER-DEVICE-ID"
	@echo "Web interface: http://$$(sed -n 's/^api *= *"\(.*\)"/\1/p' "$(HOME_DIR)/config.toml")/  (once running: $(BIN)/p2psync --home $(HOME_DIR) open)"
	$(BIN)/p2psync --home "$(HOME_DIR)" run

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check p2psync discovery_server tests bench
	$(BIN)/mypy p2psync discovery_server

bench: $(STAMP)
	@command -v syncthing >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
		{ [ "$$(id -u)" -eq 0 ] && apt-get install -y -qq syncthing || sudo apt-get install -y -qq syncthing; } } || \
		echo "syncthing not installed: running p2psync only"
	$(BIN)/python -m bench $(BENCH_ARGS)

# Discovery servers side by side (stdiscosrv, ours on memory/Redis, two instances on one
# Redis), 100,000 devices, all on loopback; the table goes into docs/discovery-server.md.
bench-discovery: $(STAMP)
	$(BIN)/python -m bench.discovery_v3_bench $(BENCH_ARGS)

soak: $(STAMP)
	P2PSYNC_SOAK=1 P2PSYNC_SOAK_SEEDS=20 $(BIN)/python -m pytest -q -s \
		tests/integration/test_engine_random.py tests/reliability/test_rel_kill.py \
		tests/reliability/test_rel_load.py tests/reliability/test_rel_network.py

chaos: $(STAMP)
	P2PSYNC_CHAOS_MINUTES=$(CHAOS_MINUTES) P2PSYNC_CHAOS_SEED=$(CHAOS_SEED) \
		P2PSYNC_CHAOS_REPORT=$(CURDIR)/chaos-report-$(CHAOS_SEED).json \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/reliability/test_rel_chaos.py -k long

# Power cut at every sync request of every tests/powerloss scenario (FUSE; root or fusermount3).
powerloss: $(STAMP)
	P2PSYNC_POWERLOSS_CUTS=all $(BIN)/python -m pytest -q -s tests/powerloss

fuzz: $(STAMP)
	$(BIN)/pip install --quiet -e '.[fuzz]'
	$(BIN)/python fuzz/make_corpus.py
	mkdir -p .fuzz-work && $(BIN)/python fuzz/fuzz_decoder.py .fuzz-work fuzz/corpus -max_total_time=$${FUZZ_SECONDS:-300}

# The whole incoming connection, TLS handshake included (about 30 inputs/s).
fuzz-connection: $(STAMP)
	$(BIN)/pip install --quiet -e '.[fuzz]'
	mkdir -p .fuzz-work-connection && $(BIN)/python fuzz/fuzz_connection.py .fuzz-work-connection fuzz/corpus_connection -max_total_time=$${FUZZ_SECONDS:-300}

reliability: $(STAMP)
	$(BIN)/python tools/reliability_report.py

# Screenshots of the web interface for docs/img (Debian's chromium, two local daemons).
screenshots: $(STAMP)
	$(BIN)/python tools/web_screenshots.py

clean:
	rm -rf $(VENV) .node .pytest_cache .fuzz-work .fuzz-work-connection
